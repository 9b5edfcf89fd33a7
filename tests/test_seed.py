"""Seeded work (lmem/seed.py): a reference's trained work, taken whole by the training job of the same work id, or
not at all (then the job trains); the ci profile's reference seeds intact."""

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lmem.config import load_config
from lmem.io import InputError
from lmem.seed import apply, export, holds_seed, main, verify
from lmem.specs import Stages

ROOT = Path(__file__).resolve().parents[1]
WID = "0123456789abcdef"


def finished_run(tmp_path: Path, packages: dict | None = None) -> Path:
    """A finished run's table, environment.json and trained work (a compressor folder with a checkpoint and logs)."""
    work = tmp_path / "run" / "work" / "compressors" / WID
    (work / "best").mkdir(parents=True)
    (work / "best" / "compressor.safetensors").write_bytes(bytes(range(256)) * 8)
    (work / "train_log.csv").write_text("step,loss\n1,2.5\n")
    table = tmp_path / "run" / "ci" / "results.csv"
    table.parent.mkdir(parents=True)
    table.write_text("benchmark,method,k,git_commit,work\n"
                     f"synth,latent_memory,5,abc123,compressors/{WID}/best\nsynth,bm25,5,abc123,\n")
    versions = packages or {p: importlib.metadata.version(p) for p in ("torch", "transformers", "peft")}
    (table.parent / "environment.json").write_text(json.dumps({"packages": versions}))
    return table


def test_a_seed_is_exported_from_a_run_and_copied_whole_into_its_work_folder(tmp_path):
    table = finished_run(tmp_path)
    seeds = tmp_path / "reference" / "work"
    assert export(table, tmp_path / "run" / "work", seeds) == [f"compressors/{WID}"]
    manifest = verify(seeds / "compressors" / WID)
    assert manifest["git_commit"] == ["abc123"] and manifest["work"] == f"compressors/{WID}"
    assert sorted(manifest["files"]) == ["best/compressor.safetensors", "train_log.csv"]

    final = tmp_path / "new" / "work" / "compressors" / WID
    (final / "best").mkdir(parents=True)  # as Snakemake makes an output's folder before the job
    assert apply(seeds / "compressors" / WID, final)
    src = tmp_path / "run" / "work" / "compressors" / WID
    for name in manifest["files"]:
        assert (final / name).read_bytes() == (src / name).read_bytes()
        # dated now, not the checkout's time: else the models file, made later in the run, would outdate them
        assert (final / name).stat().st_mtime >= (seeds / "compressors" / WID / name).stat().st_mtime
    assert (final / "seed.json").exists() and holds_seed(final)  # seeded work says so (lmem regress reads it)
    (final / "best" / "compressor.safetensors").write_bytes(b"retrained")  # e.g. make ci-fresh in the same folder
    assert not holds_seed(final)
    assert not list(final.parent.glob(".*"))  # no staging folder left behind


@pytest.mark.parametrize("damage", ["changed", "missing", "extra"])
def test_a_damaged_seed_fails_naming_the_file(tmp_path, damage):
    table = finished_run(tmp_path)
    seeds = tmp_path / "work"
    export(table, tmp_path / "run" / "work", seeds)
    seed = seeds / "compressors" / WID
    target = seed / "best" / "compressor.safetensors"
    if damage == "changed":
        target.write_bytes(b"version https://git-lfs.github.com/spec/v1\n")  # e.g. a Git LFS pointer
    elif damage == "missing":
        target.unlink()
    else:
        (seed / "notes.txt").write_text("?")
    with pytest.raises(InputError, match="compressor.safetensors|notes.txt"):
        apply(seed, tmp_path / "new" / WID)
    assert not (tmp_path / "new" / WID).exists()  # nothing written half
    with pytest.raises(SystemExit) as e:  # the command line: exit 2, the command after -- never runs
        main(["apply", "--from", str(seed), "--to", str(tmp_path / "new" / WID), "--", "false"])
    assert e.value.code == 2


@pytest.mark.parametrize("case", ["no seed", "other packages"])
def test_without_a_seed_it_may_take_the_job_runs_its_training_command(tmp_path, case):
    """No seed for the id, or one trained under another torch: the command after -- runs (the job trains)."""
    table = finished_run(tmp_path, {"torch": "1.0.0", "transformers": None, "peft": None}
                         if case == "other packages" else None)
    seeds = tmp_path / "work"
    export(table, tmp_path / "run" / "work", seeds)
    seed = seeds / "compressors" / (WID if case == "other packages" else "f" * 16)
    final = tmp_path / "new" / seed.name
    marker = tmp_path / "trained"
    out = subprocess.run([sys.executable, "-m", "lmem.seed", "apply", "--from", str(seed), "--to", str(final), "--",
                          sys.executable, "-c", f"open({str(marker)!r}, 'w').write('trained')"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert marker.read_text() == "trained" and not (final / "seed.json").exists()
    assert ("torch 2" in out.stderr and "(seed: 1.0.0)" in out.stderr) if case == "other packages" \
        else "no seed" in out.stderr


def test_work_a_run_took_from_a_seed_is_exported_with_the_seeds_provenance(tmp_path):
    """A run that was itself seeded (make ci) did not train its work: exported again, it names the commit that did."""
    table = finished_run(tmp_path)
    export(table, tmp_path / "run" / "work", tmp_path / "first")
    again = tmp_path / "again" / "work" / "compressors" / WID
    assert apply(tmp_path / "first" / "compressors" / WID, again)
    table.write_text(table.read_text().replace("abc123", "def456"))  # the seeded run's own commit
    export(table, tmp_path / "again" / "work", tmp_path / "second")
    assert verify(tmp_path / "second" / "compressors" / WID)["git_commit"] == ["abc123"]


def test_export_needs_the_runs_work_and_its_environment(tmp_path):
    table = finished_run(tmp_path)
    with pytest.raises(InputError, match="pass the run's --work-dir"):
        export(table, tmp_path / "elsewhere", tmp_path / "seeds")
    (table.parent / "environment.json").unlink()
    with pytest.raises(InputError, match="environment.json"):
        export(table, tmp_path / "run" / "work", tmp_path / "seeds")


def test_the_ci_profile_seeds_its_training_jobs_from_its_reference_and_the_demo_does_not():
    ci = Stages(dict(load_config(ROOT / "config/ci.yaml"), results_dir="/r"))
    cid = ci.work_id("compressors", "smollm2")
    assert ci.seeded("compressors", "smollm2") == (
        f"python -m lmem.seed apply --from results/reference/ci/work/compressors/{cid} "
        f"--to /r/work/compressors/{cid} -- ")
    assert ci.seeded("projectors", "minilm").startswith("python -m lmem.seed apply --from results/reference/ci/work/")
    demo = Stages(dict(load_config(ROOT / "config/demo.yaml"), results_dir="/r"))
    assert demo.seeded("compressors", "smollm2") == ""
    off = Stages(dict(load_config(ROOT / "config/ci.yaml"), results_dir="/r", work_seed=""))  # make ci-fresh
    assert off.seeded("compressors", "smollm2") == ""


def test_the_ci_reference_seeds_are_intact():
    """What results/reference/ci/work holds is what its manifests list: the trained work of the reference's run."""
    seeds = sorted((ROOT / "results/reference/ci/work").glob("*/*/seed.json"))
    assert {p.parent.parent.name for p in seeds} == {"compressors", "projectors"}
    commits = {json.loads(p.read_text())["git_commit"][0] for p in seeds}
    table = (ROOT / "results/reference/ci/results.csv").read_text()
    for seed in seeds:
        verify(seed.parent)
        assert f"{seed.parent.parent.name}/{seed.parent.name}" in table  # the reference's rows read this work
    assert len(commits) == 1 and all(c in table for c in commits)  # from the run that made the table
