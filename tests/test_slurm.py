"""The DAG on a running SLURM cluster (issue 16): a small real slice (prepare, models, a short compressor training,
the latent index, two methods, score, report) submitted job by job through snakemake-executor-plugin-slurm with
`workflows/profiles/slurm-cpu`, against the end-to-end test's local run of the same profile (conftest.e2e_run, which
has more methods); then a job that fails.

The cluster is any one `scontrol ping` answers, e.g. the single-node one of `workflows/slurm/cluster.sh up`
(CI starts it in .ci/run). Absent: skipped on a user's machine, a failure under CI=true. The runs start with the
session, in the background at niceness 19 (conftest.slurm_slice); this test waits for them and checks what they
made. The real SmolLM2 generator, a tiny random compressor (plumbing: the numbers only have to be equal, not good).
The same profile from scratch locally and on the cluster is also the DAG's determinism check: the two give
byte-identical predictions, weights and latents."""

import csv
import re
import subprocess
from pathlib import Path

import pytest

from conftest import OFFLINE_ENV, SLICE, in_ci


ENV = OFFLINE_ENV
NO_CLUSTER = ("no running SLURM cluster (`scontrol ping`): start one with `workflows/slurm/cluster.sh up` (root; "
              "installs Debian's slurm-wlm, slurmdbd, munge and mariadb-server)")


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
def test_the_dag_on_a_slurm_cluster(request, slurm_slice):
    # the runs started with the session (conftest.slurm_slice); a cluster absent under CI=true is a failure
    cluster = slurm_slice.cluster
    if not cluster and in_ci():
        pytest.fail(NO_CLUSTER + "; .ci/run starts it, and CI must not pass by skipping")
    local_res = request.getfixturevalue("e2e_run").results
    status, logs = {}, {}
    for name, (code, log) in slurm_slice.wait().items():
        status[name], logs[name] = code, log
    assert status["cluster"] == 0, logs["cluster"][-3000:]
    since = slurm_slice.since

    # the same slice, the same table: local and cluster agree on every value but wall time, and on every byte of
    # what the jobs made (determinism: the same config and seed from scratch in another folder)
    cluster_res = slurm_slice.tmp / "cluster" / "e2e"
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
    assert status["failing"] != 0
    assert re.search(r"SLURM-job '?\d+'? failed, SLURM status is: '?FAILED'?", logs["failing"]), logs["failing"][-3000:]
    failed_id = re.search(r"SLURM run ID: ([0-9a-f-]+)", logs["failing"]).group(1)
    assert "FAILED" in {j["state"] for j in sacct(since) if j["name"] == failed_id}
