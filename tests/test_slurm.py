"""The DAG on a running SLURM cluster (issue 16): a small real slice (prepare, models, a short compressor training,
the latent index, two methods, score, report) submitted job by job through snakemake-executor-plugin-slurm with
`workflows/profiles/slurm-cpu`, against the end-to-end test's local run of the same profile (conftest.e2e_run, which
has more methods); then a job that fails.

The cluster is any one `scontrol ping` answers, e.g. the single-node one of `workflows/slurm/cluster.sh up`
(CI starts it in .ci/run). Absent: skipped on a user's machine, a failure under CI=true. The real SmolLM2
generator, a tiny random compressor (plumbing: the numbers only have to be equal, not good). The same profile from
scratch locally and on the cluster is also the DAG's determinism check: the two give byte-identical predictions,
weights and latents."""

import csv
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import E2E_THREADS, OFFLINE_ENV, e2e_config, in_ci, snakemake


ENV = OFFLINE_ENV
NO_CLUSTER = ("no running SLURM cluster (`scontrol ping`): start one with `workflows/slurm/cluster.sh up` (root; "
              "installs Debian's slurm-wlm, slurmdbd, munge and mariadb-server)")


def have_cluster() -> bool:
    """A cluster `scontrol ping` answers; absent under CI=true is a failure (.ci/run starts one)."""
    ping = shutil.which("scontrol") and subprocess.run(["scontrol", "ping"], env=ENV, capture_output=True, text=True)
    up = bool(ping and ping.returncode == 0 and "UP" in ping.stdout)
    if not up and in_ci():
        pytest.fail(NO_CLUSTER + "; .ci/run starts it, and CI must not pass by skipping")
    return up


# the plugin's first status check 4 s after a submission instead of 40, then one every 3 s instead of 10: a job here
# takes 7-29 s, most of it start-up (Snakemake's inside the job, then Python's imports); a real cluster's accounting
# is better polled at the defaults
SLURM = ["--workflow-profile", "workflows/profiles/slurm-cpu", "--slurm-init-seconds-before-status-checks", "4",
         "--seconds-between-status-checks", "3"]


SLICE = ["closed_book", "latent_memory"]  # the end-to-end profile's methods that the cluster runs: every stage


def table(path):
    """results.csv without its wall-time column (the one column that may differ between two runs)."""
    return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(path.open())]


def sacct(since: str) -> list[dict]:
    out = subprocess.run(["sacct", "-X", "--parsable2", "--noheader", "-S", since, "--format",
                          "JobID,JobName,State,ExitCode,Comment%200"], env=ENV, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    keys = ["id", "name", "state", "exit", "comment"]
    return [dict(zip(keys, line.split("|"))) for line in out.stdout.splitlines() if line.strip()]


@pytest.mark.slow
def test_the_dag_on_a_slurm_cluster(request, tmp_path, tiny_llama):
    cluster = have_cluster()

    def start(name, profile, cfg):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
        if profile is SLURM:  # each run its own SLURM log folder: a run's clean-up at its end removes empty ones
            profile = SLURM + ["--slurm-logdir", str(tmp_path / name / "slurm_logs")]
        return snakemake(*profile, *E2E_THREADS, "--configfile", str(tmp_path / f"{name}.yaml"), background=True)

    # the end-to-end profile's slice (SLICE) on the cluster, and a slice with a job that fails (a method whose
    # generator does not exist), while the whole profile runs locally (conftest.e2e_run: a SLURM run is mostly
    # waiting). Without a cluster (a user's machine) the slice runs locally too: the determinism check still runs,
    # the SLURM checks are skipped
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 1))
    local = ["--workflow-profile", "workflows/profiles/default", "--cores", "2"]
    runs = {"cluster": start("cluster", SLURM if cluster else local, e2e_config(tmp_path / "cluster", tiny_llama, SLICE))}
    if cluster:
        broken = e2e_config(tmp_path / "failing", tiny_llama, [])
        broken["methods"] = {"broken": {"class": "closed_book", "generator": {"model": str(tmp_path / "no-such-model")}}}
        runs["failing"] = start("failing", SLURM, broken)
    local_res = request.getfixturevalue("e2e_run").results
    logs = {name: run.communicate(timeout=900)[0] for name, run in runs.items()}
    assert runs["cluster"].returncode == 0, logs["cluster"][-3000:]

    # the same slice, the same table: local and cluster agree on every value but wall time, and on every byte of
    # what the jobs made (determinism: the same config and seed from scratch in another folder)
    cluster_res = tmp_path / "cluster" / "e2e"
    local_rows = [r for r in table(local_res / "results.csv") if r["method"] in SLICE]
    assert table(cluster_res / "results.csv") == local_rows
    made = sorted(p.relative_to(cluster_res) for p in cluster_res.glob("predictions/**/*.jsonl"))
    assert len(made) == 2, made
    made += [Path("latent_index/tiny-best/synth/shard-00000.safetensors")]
    # the compressor: trained work, in each run's work folder under the same id (what made it, not where)
    work = {r["work"] for r in csv.DictReader((cluster_res / "results.csv").open()) if r["work"]}
    assert len(work) == 1, work
    made += [Path("..", "work", work.pop(), "compressor.safetensors")]
    for rel in made:
        assert (cluster_res / rel).read_bytes() == (local_res / rel).read_bytes(), f"{rel} differs"
    if not cluster:
        pytest.skip(NO_CLUSTER + " (the determinism check above ran: two local runs)")

    # every job of the cluster run but the `all` target went through sbatch, and SLURM's accounting says each one
    # completed
    done = re.findall(r"(\d+) of (\d+) steps \(100%\) done", logs["cluster"])
    assert done, logs["cluster"][-3000:]
    run_id = re.search(r"SLURM run ID: ([0-9a-f-]+)", logs["cluster"]).group(1)
    jobs = [j for j in sacct(since) if j["name"] == run_id]
    rules = sorted(j["comment"].split("_wildcards")[0].removeprefix("rule_") for j in jobs)
    assert len(jobs) == int(done[-1][1]) - 1, (rules, logs["cluster"][-2000:])
    assert {j["state"] for j in jobs} == {"COMPLETED"}, jobs
    assert {"prepare", "models", "train_compressor", "build_latent_index", "run_method", "score",
            "report"} <= set(rules), rules

    # the failing job failed the run, with SLURM's own verdict, and accounting has it as FAILED
    assert runs["failing"].returncode != 0
    assert re.search(r"SLURM-job '?\d+'? failed, SLURM status is: '?FAILED'?", logs["failing"]), logs["failing"][-3000:]
    failed_id = re.search(r"SLURM run ID: ([0-9a-f-]+)", logs["failing"]).group(1)
    assert "FAILED" in {j["state"] for j in sacct(since) if j["name"] == failed_id}
