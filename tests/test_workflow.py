"""The DAG itself: dry runs of both profiles, lint, and one small end-to-end run of every stage."""

import copy
import csv
import json
import re

import pytest
import yaml

from conftest import E2E_THREADS, ROOT, snakemake


def planned(cfg: dict, path, *args, env=None) -> dict[str, int]:
    """Jobs per rule that a dry run of profile `cfg` (written to `path`) plans: its 'Job stats' table."""
    path.write_text(yaml.safe_dump(cfg))
    out = snakemake("--workflow-profile", "workflows/profiles/default", "--configfile", str(path), "-n", *args,
                    env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:")[1].split("Reasons:")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m[1] != "total"}


@pytest.mark.parametrize("profile", ["demo", "demo_full", "ci"])
def test_dry_run_lists_every_stage(profile, shared_data, tmp_path):
    out = snakemake("-n", "--workflow-profile", "workflows/profiles/default", "--configfile",
                    f"config/{profile}.yaml", "--config", f"results_dir={tmp_path}")
    assert out.returncode == 0, out.stderr
    jobs = ["prepare", "models", "train_compressor", "build_latent_index", "run_method", "score", "report"]
    jobs += {"demo": [], "ci": ["train_xrag"], "demo_full": ["train_xrag", "train_vision"]}[profile]
    for job in jobs:
        assert f"rule {job}:" in out.stdout + out.stderr, job
    # the default demo is text only, with Latent Memory's two controls (README, "Profiles")
    assert ("rule train_vision:" in out.stdout + out.stderr) == (profile == "demo_full")
    assert "latent_index/smollm2-best/synth/meta.json" in out.stdout
    assert "predictions/synth/latent_memory_shuffled/k5.jsonl" in out.stdout
    assert ("predictions/synth/xrag_shuffled/k5.jsonl" in out.stdout) == (profile != "demo")
    if profile != "ci":
        assert "predictions/synth/latent_memory_untrained/k5.jsonl" in out.stdout
    # the ci profile's three training jobs take the reference's trained work when it is theirs (lmem/seed.py)
    seeded = re.findall(r"python -m lmem\.seed apply --from results/reference/ci/work/(\w+)/", out.stdout)
    assert sorted(seeded) == (["compressors", "compressors", "projectors"] if profile == "ci" else [])
    if profile == "ci":  # the real slices read the second stage, trained from the first stage's best checkpoint
        assert "latent_index/smollm2_hotpotqa-best/hotpotqa/meta.json" in out.stdout
        assert "latent_index/smollm2-best/hotpotqa" not in out.stdout
    if profile == "demo_full":
        # synth-vqa's latent_memory runs on the image compressor (the benchmark's override), synth on the text one
        assert "latent_index/smollm2_vqa-best/synth-vqa/meta.json" in out.stdout
        assert "latent_index/smollm2-best/synth-vqa" not in out.stdout


PAPER_PROFILES = sorted(p.stem for p in (ROOT / "config" / "paper").glob("*.yaml"))


@pytest.mark.parametrize("executor", ["local-gpu", "slurm"])
@pytest.mark.parametrize("profile", PAPER_PROFILES)
def test_paper_profiles_dry_run_offline(profile, executor, tmp_path):
    """Every paper profile plans its whole DAG with both executor profiles, offline (nothing is fetched)."""
    out = snakemake("-n", "--workflow-profile", f"workflows/profiles/{executor}", "--configfile",
                    f"config/paper/{profile}.yaml", "--config", f"results_dir={tmp_path}")
    assert out.returncode == 0, out.stderr[-3000:]
    log = out.stdout + out.stderr
    for job in ("prepare", "models", "train_compressor", "build_latent_index", "run_method", "score", "report"):
        assert f"rule {job}:" in log, job
    assert not list(tmp_path.iterdir()), "a dry run must not write results"


def test_a_bad_option_fails_the_dry_run_naming_file_key_and_allowed_values(tmp_path):
    config = yaml.safe_load((ROOT / "config/ci.yaml").read_text())
    config["methods"]["latent_memory_pq"]["storage"] = "pq4"  # a shared key (config/schema.yaml)
    config["methods"]["dense"]["pooling"] = "max"  # a method's own option (baselines/dense.py)
    for key, allowed in (("storage", "'fp16', 'int8', 'pq'"), ("pooling", "'mean', 'last'")):
        path = tmp_path / f"bad_{key}.yaml"
        path.write_text(yaml.safe_dump(config))
        out = snakemake("-n", "--workflow-profile", "workflows/profiles/default", "--configfile", str(path),
                        "--config", f"results_dir={tmp_path}")
        text = out.stdout + out.stderr
        assert out.returncode != 0 and f"{path}: " in text and key in text and allowed in text, text[-2000:]
        config["methods"]["latent_memory_pq"]["storage"] = "pq"  # the next round: the method's own option alone


def test_lint_is_clean():
    out = snakemake("--lint", "--configfile", "config/ci.yaml")
    assert out.returncode == 0
    assert "Congratulations, your workflow is in a good condition" in out.stdout + out.stderr, out.stdout


@pytest.mark.slow
def test_end_to_end_tiny_profile(e2e_run, tmp_path, tiny_llama):
    """prepare -> models -> train -> index -> run -> score -> report on synth (conftest.e2e_config): the real SmolLM2
    generator and MiniLM retriever, a tiny random compressor (plumbing); then a no-op rerun."""
    cfg, path, env = e2e_run.cfg, e2e_run.path, e2e_run.env
    res = e2e_run.results
    rows = list(csv.DictReader((res / "results.csv").open()))
    types = {r["benchmark"] for r in rows} - {"synth"}  # per question type: synth[bridge], synth[comparison]
    assert types == {"synth[bridge]", "synth[comparison]"}
    rows = [r for r in rows if r["benchmark"] == "synth"]
    assert {(r["method"], r["k"]) for r in rows} == {("closed_book", "all"), ("oracle", "all"), ("bm25", "1"),
                                                     ("dense", "2"), ("latent_memory", "2"),
                                                     ("latent_memory_untrained", "2"),
                                                     ("latent_memory_shuffled", "2"), ("cross_family", "2"),
                                                     ("dense_global", "2"), ("latent_memory_variants", "2"),
                                                     ("first_sentence_example", "all")}
    by = {r["method"]: r for r in rows}
    # the shuffled-memory control reads other questions' latents: never their gold, the same token count
    assert float(by["latent_memory_shuffled"]["recall_at_k"]) == 0.0
    assert by["latent_memory_shuffled"]["tokens_context"] == by["latent_memory"]["tokens_context"]
    assert all(r["n"] == "8" and len(r["generator_sha256"]) == 64 and r["config_hash"] for r in rows)
    assert float(by["oracle"]["recall_at_k"]) == 1.0 and float(by["closed_book"]["tokens_context"]) == 0
    assert float(by["latent_memory"]["tokens_context"]) < float(by["dense"]["tokens_context"])
    assert float(by["latent_memory"]["bytes_per_item"]) == 32 * 2  # one fp16 latent of the tiny compressor
    variants = by["latent_memory_variants"]
    assert (variants["retrieval"], variants["latent_layout"]) == ("global", "compact")
    assert float(variants["tokens_context"]) < float(by["latent_memory"]["tokens_context"])
    assert by["dense_global"]["retrieval"] == "global" and by["dense"]["retrieval"] == "pool"
    assert by["latent_memory"]["metric"] == "hotpotqa"
    assert (res / "embeddings/synth/retriever.safetensors").exists() and (res / "plots/synth.storage.png").exists()
    assert by["cross_family"]["generator"] == tiny_llama and by["dense"]["generator"].startswith("HuggingFaceTB/")
    assert by["cross_family"]["models"].startswith("compressor=") and by["dense"]["models"].startswith("retriever=")
    work = res.parent / "work"  # trained work, by what made it (lmem/work.py)
    cid = by["latent_memory"]["work"].split("/")[1]
    assert by["latent_memory"]["work"] == f"compressors/{cid}/best"  # the table names the folder each row used
    assert by["latent_memory_untrained"]["work"] == f"compressors/{cid}/init" and by["bm25"]["work"] == ""
    assert (work / f"compressors/{cid}/train_log.csv").exists() and not (work / f"compressors/{cid}/last").exists()
    assert not (work / "partial").exists() or not any((work / "partial").rglob("*.json"))  # nothing half-made left
    timed = list(csv.DictReader((res / "timings.csv").open()))  # one row per job, from its benchmark file
    assert {(t["rule"], t["job"]) for t in timed} >= {("prepare", "synth"), ("train", "tiny"),
                                                       ("index", "tiny-best/synth"), ("index", "tiny-init/synth"),
                                                       ("run", "synth/latent_memory/k2")}
    assert len([t for t in timed if t["rule"] == "run"]) == 12 and all(float(t["s"]) >= 0 for t in timed)
    assert ("embed", "synth") in {(t["rule"], t["job"]) for t in timed}
    assert "| train " in (res / "timings.md").read_text()
    for ext in ("png", "svg"):
        assert (res / "plots" / f"synth.{ext}").exists()
    md = (res / "results.md").read_text()
    assert "## Not run (1)" in md and "llmlingua2_r10 k=all: LLMLingua-2 model unavailable" in md
    assert "SKIPPED llmlingua2_r10" in (res / "logs/run/synth/llmlingua2_r10/kall.log").read_text()
    preds = [json.loads(line) for line in (res / "predictions/synth/oracle/kall.jsonl").open()]
    assert len(preds) == 8 and all(p["tokens_full"] > p["tokens_no_system"] > p["tokens_context"] > 0 for p in preds)
    again = snakemake("--workflow-profile", "workflows/profiles/default", "--configfile", str(path), "-n", env=env)
    assert "Nothing to be done" in again.stdout + again.stderr

    # another profile with the same compressor spec, under another entry name, trains nothing: it reuses the work
    other = dict(copy.deepcopy(cfg), name="e2e_other", compressors={"renamed": cfg["compressors"]["tiny"]},
                 methods={"bm25": {"k": [1]}, "latent_memory": {"k": [2], "compressor": "renamed"}})
    jobs = planned(other, tmp_path / "other.yaml", env=env)
    assert "train_compressor" not in jobs and jobs["build_latent_index"] == 1 and jobs["run_method"] == 2, jobs
    # one training option changed: that compressor retrains, with what reads it; the text baselines do not rerun
    changed = copy.deepcopy(cfg)
    changed["compressors"]["tiny"]["train"]["lr"] = 1e-3
    jobs = planned(changed, tmp_path / "changed.yaml", env=env)
    assert jobs["train_compressor"] == 1 and jobs["build_latent_index"] == 2, jobs
    assert jobs["run_method"] == 5, jobs  # latent_memory, _untrained, _shuffled, _variants and cross_family only
    # a forced retrain trains again from step 0 and succeeds
    best = work / f"compressors/{cid}/best/compressor.safetensors"
    forced = snakemake("--workflow-profile", "workflows/profiles/default", "--configfile", str(path), *E2E_THREADS,
                       "--forcerun", "train_compressor", "--cores", "2", str(best), env=env)
    assert forced.returncode == 0, forced.stderr[-3000:]
    log_rows = list(csv.DictReader((work / f"compressors/{cid}/train_log.csv").open()))
    assert [r["step"] for r in log_rows] == ["1", "2"] and best.exists()

    # determinism (the same config and seed from scratch in another folder, byte-identical outputs) is checked by
    # tests/test_slurm.py, whose second run of its slice goes through SLURM


@pytest.mark.slow
def test_a_new_baseline_is_one_file_and_one_config_entry(e2e_run):
    """A module in a baselines folder (here one named by LMEM_BASELINES, as the repository's baselines/ would be),
    named in the config (conftest.NEW_BASELINE, the end-to-end profile's `first_sentence_example`): it runs and
    reaches the results table."""
    rows = [r for r in csv.DictReader((e2e_run.results / "results.csv").open())
            if r["benchmark"] == "synth" and r["method"] == "first_sentence_example"]
    assert [(r["k"], r["n"]) for r in rows] == [("all", "8")]
    assert float(rows[0]["tokens_context"]) > 0
    preds = e2e_run.results / "predictions/synth/first_sentence_example/kall.jsonl"
    assert [len(json.loads(line)["retrieved_ids"]) for line in preds.open()] == [1] * 8  # its one sentence each
