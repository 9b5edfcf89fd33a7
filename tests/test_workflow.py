"""The DAG itself: dry runs of both profiles, lint, and one small end-to-end run of every stage."""

import csv
import json
import os
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT

ENV = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")


def snakemake(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=1800)


@pytest.mark.parametrize("profile", ["demo", "ci"])
def test_dry_run_lists_every_stage(profile, shared_data):
    out = snakemake("-n", "--workflow-profile", "workflows/profiles/default", "--configfile",
                    f"config/{profile}.yaml", "--directory", str(ROOT))
    assert out.returncode == 0, out.stderr
    for job in ("prepare", "models", "run_method", "score", "report"):
        assert f"rule {job}:" in out.stdout + out.stderr, job


def test_lint_is_clean():
    out = snakemake("--lint", "--configfile", "config/ci.yaml")
    assert out.returncode == 0
    assert "Congratulations, your workflow is in a good condition" in out.stdout + out.stderr, out.stdout


@pytest.mark.slow
def test_end_to_end_tiny_profile(tmp_path):
    """prepare -> models -> run -> score -> report on synth with the real models; then a no-op rerun."""
    cfg = {
        "name": "e2e", "results_dir": str(tmp_path / "results"),
        "generator": {"dtype": "bfloat16", "max_new_tokens": 12, "batch_size": 8},
        "prompt": {"format": "fewshot"},
        "benchmarks": {"synth": {"loader": "hotpotqa", "source": {"synth": {"seed": 1, "n_test": 8}}}},
        "methods": {"closed_book": {}, "oracle": {}, "bm25": {"k": [1]}, "dense": {"k": [2]}},
        "metrics": {"bootstrap_samples": 50},
    }
    path = tmp_path / "e2e.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = snakemake("--workflow-profile", "workflows/profiles/default", "--configfile", str(path), "--cores", "2")
    assert out.returncode == 0, out.stderr[-3000:]
    res = tmp_path / "results" / "e2e"
    rows = list(csv.DictReader((res / "results.csv").open()))
    assert {(r["method"], r["k"]) for r in rows} == {("closed_book", "all"), ("oracle", "all"), ("bm25", "1"),
                                                     ("dense", "2")}
    by = {r["method"]: r for r in rows}
    assert all(r["n"] == "8" and len(r["generator_sha256"]) == 64 and r["config_hash"] for r in rows)
    assert float(by["oracle"]["recall_at_k"]) == 1.0 and float(by["closed_book"]["tokens_context"]) == 0
    assert float(by["bm25"]["tokens_context"]) < float(by["dense"]["tokens_context"]) + 200
    for ext in ("png", "svg"):
        assert (res / "plots" / f"synth.{ext}").exists()
    preds = [json.loads(line) for line in (res / "predictions/synth/oracle/kall.jsonl").open()]
    assert len(preds) == 8 and all(p["tokens_full"] > p["tokens_no_system"] > p["tokens_context"] > 0 for p in preds)
    again = snakemake("--workflow-profile", "workflows/profiles/default", "--configfile", str(path), "-n")
    assert "Nothing to be done" in again.stdout + again.stderr
