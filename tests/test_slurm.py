"""The DAG on a running SLURM cluster (issue 16): a small real slice (prepare, models, a short compressor training,
the latent index, two methods, score, report) submitted job by job through snakemake-executor-plugin-slurm with
`workflows/profiles/slurm-cpu`, against the same slice run locally; then a job that fails.

The cluster is any one `scontrol ping` answers, e.g. the single-node one of `workflows/slurm/cluster.sh up`
(CI starts it in .ci/run). Absent: skipped on a user's machine, a failure under CI=true. The real SmolLM2
generator, a tiny random compressor (plumbing: the numbers only have to be equal, not good). The same slice from
scratch locally and on the cluster is also the DAG's determinism check: the two give byte-identical predictions,
weights and latents."""

import csv
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import OFFLINE_ENV, ROOT, in_ci


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


# the plugin's first status check 8 s after a submission instead of 40 (then 10 s more after each check that finds
# nothing done): a job here takes 14-28 s, most of it Snakemake's own start-up inside the job
SLURM = ["--workflow-profile", "workflows/profiles/slurm-cpu", "--slurm-init-seconds-before-status-checks", "8"]


def slice_config(results_dir, tiny_llama) -> dict:
    synth = {"seed": 2, "n_train": 8, "n_dev": 2, "n_test": 6}
    return {
        "name": "slurm", "results_dir": str(results_dir),
        "generator": {"max_new_tokens": 6, "batch_size": 8},   # the real SmolLM2-135M-Instruct
        "benchmarks": {"synth": {"loader": "hotpotqa", "source": {"synth": dict(synth, split="test")}}},
        "methods": {"closed_book": {}, "latent_memory": {"k": [2], "compressor": "tiny"}},
        "compressors": {"tiny": {
            "model": tiny_llama, "lora_r": 4, "lora_alpha": 8,
            "train": {"steps": 2, "batch_size": 4, "eval_every": 2, "save_every": 2, "val_questions": 2,
                      "hard_negatives": 2, "distill_tokens": 2, "distill_topk": 8},
            "train_data": {"loader": "hotpotqa", "source": {"synth": dict(synth, split="train")}},
            "val_data": {"loader": "hotpotqa", "source": {"synth": dict(synth, split="dev")}}}},
        "metrics": {"bootstrap_samples": 50},
    }


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
def test_the_dag_on_a_slurm_cluster(tmp_path, tiny_llama):
    cluster = have_cluster()

    def start(name, profile, cfg):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
        if profile is SLURM:  # each run its own SLURM log folder: a run's clean-up at its end removes empty ones
            profile = SLURM + ["--slurm-logdir", str(tmp_path / name / "slurm_logs")]
        return subprocess.Popen([sys.executable, "-m", "snakemake", *profile, "--configfile",
                                 str(tmp_path / f"{name}.yaml")], cwd=ROOT, env=ENV, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    # three runs at once (a SLURM run is mostly waiting): the slice locally, the slice on the cluster, and a slice
    # with a job that fails (a method whose generator does not exist). Without a cluster (a user's machine) the
    # second run is local too: the determinism check still runs, the SLURM checks are skipped
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 1))
    local = ["--workflow-profile", "workflows/profiles/default", "--cores", "2"]
    broken = slice_config(tmp_path / "failing", tiny_llama)
    broken["methods"] = {"broken": {"class": "closed_book", "generator": {"model": str(tmp_path / "no-such-model")}}}
    runs = {"local": start("local", local, slice_config(tmp_path / "local", tiny_llama)),
            "cluster": start("cluster", SLURM if cluster else local, slice_config(tmp_path / "cluster", tiny_llama))}
    if cluster:
        runs["failing"] = start("failing", SLURM, broken)
    logs = {name: run.communicate(timeout=900)[0] for name, run in runs.items()}
    assert runs["local"].returncode == 0, logs["local"][-3000:]
    assert runs["cluster"].returncode == 0, logs["cluster"][-3000:]

    # the same slice, the same table: local and cluster agree on every value but wall time, and on every byte of
    # what the jobs made (determinism: the same config and seed from scratch in another folder)
    local_res, cluster_res = tmp_path / "local" / "slurm", tmp_path / "cluster" / "slurm"
    assert table(cluster_res / "results.csv") == table(local_res / "results.csv")
    made = sorted(p.relative_to(local_res) for p in local_res.glob("predictions/**/*.jsonl"))
    made += [Path("latent_index/tiny-best/synth/shard-00000.safetensors")]
    # the compressor: trained work, in each run's work folder under the same id (what made it, not where)
    work = {r["work"] for r in csv.DictReader((local_res / "results.csv").open()) if r["work"]}
    assert len(work) == 1, work
    made += [Path("..", "work", work.pop(), "compressor.safetensors")]
    assert len(made) == 4
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
