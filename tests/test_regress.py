"""`lmem regress`: the committed reference passes against itself; perturbed tables fail, harmless noise passes."""

import json
from pathlib import Path

import pandas as pd
import pytest

from lmem import regress
from lmem.io import sha256_file

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "results" / "reference" / "ci" / "results.csv"


def run(args: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        regress.main(args)
        raise SystemExit(0)
    return exc.value.code


def perturbed(tmp_path, change) -> str:
    df = pd.read_csv(REFERENCE, dtype={"k": str})
    df = change(df)
    path = tmp_path / "results.csv"
    df.to_csv(path, index=False)
    return str(path)


def test_reference_passes_against_itself(capsys):
    assert run([str(REFERENCE), "--reference", str(REFERENCE)]) == 0
    assert "OK" in capsys.readouterr().out


def test_ci_profile_names_the_reference(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert run([str(REFERENCE), "--config", "config/ci.yaml"]) == 0


@pytest.mark.parametrize("column,delta", [("f1", 2.5), ("em", -3.0), ("recall_at_k", 0.05), ("tokens_context", 1),
                                          ("tokens_full", 0.01), ("n", -1)])
def test_drift_beyond_tolerance_fails(tmp_path, capsys, column, delta):
    def change(df):
        row = df.index[(df.method == "bm25") & df[column].notna()][0]
        df.loc[row, column] += delta
        return df

    assert run([perturbed(tmp_path, change), "--reference", str(REFERENCE)]) == 1
    out = capsys.readouterr().out
    assert "DRIFT" in out and column in out and "REGRESSION" in out


def test_missing_row_fails_and_new_row_does_not(tmp_path, capsys):
    assert run([perturbed(tmp_path, lambda df: df.iloc[1:]), "--reference", str(REFERENCE)]) == 1
    assert "MISSING" in capsys.readouterr().out

    def add(df):
        extra = df.iloc[[0]].copy()
        extra["method"] = "my_new_baseline"
        return pd.concat([df, extra])

    assert run([perturbed(tmp_path, add), "--reference", str(REFERENCE)]) == 0
    assert "new row" in capsys.readouterr().out


def test_noise_within_band_passes(tmp_path):
    def nudge(df):
        df["f1"] = df["f1"] + 1.0
        df["recall_at_k"] = df["recall_at_k"] - 0.01
        df["seconds"] = df["seconds"] * 3  # timings and commit ids are not compared
        df["git_commit"] = "0000000"
        return df

    assert run([perturbed(tmp_path, nudge), "--reference", str(REFERENCE)]) == 0


def test_unreadable_input_is_a_clear_error(tmp_path, capsys):
    assert run([str(tmp_path / "absent.csv"), "--reference", str(REFERENCE)]) == 2
    assert "absent.csv: no such results table" in capsys.readouterr().err
    dup = perturbed(tmp_path, lambda df: pd.concat([df, df.iloc[[0]]]))
    assert run([dup, "--reference", str(REFERENCE)]) == 2


def test_guard_zeroes_the_projection(tiny_llama, tmp_path):
    """lmem.guard's checkpoint copy projects every latent to the zero vector; the rest of the compressor is kept."""
    import torch

    from lmem.compressor import CompressorConfig, build_compressor, load_compressor
    from lmem.guard import zero_projection

    comp = build_compressor(CompressorConfig(model=tiny_llama, lora_r=4, lora_alpha=8)).eval()
    comp.save(tmp_path / "ckpt")
    zero_projection(tmp_path / "ckpt", tmp_path / "zeroed")
    zeroed = load_compressor(tmp_path / "zeroed")
    ids = comp.tokenize(["Ada lives in Pell."], 16)
    with torch.no_grad():
        assert comp.project(comp.compress(ids)).abs().sum() > 0
        assert zeroed.project(zeroed.compress(ids)).abs().sum() == 0
        torch.testing.assert_close(zeroed.compress(ids), comp.compress(ids))


def test_guard_puts_the_rerun_rows_in_the_table():
    """The zeroed-projection rows (empty fields as None, as lmem.score writes them) replace the method's rows; the
    comparison fails on a moved F1 and passes on unchanged rows."""
    from lmem.config import load_config
    from lmem.guard import with_rows

    tolerances = load_config(ROOT / "config" / "ci.yaml")["regress"]["tolerances"]
    reference = regress.read_table(REFERENCE)
    key = ("synth", "latent_memory", "5")
    row = {c: (None if pd.isna(v) else v) for c, v in reference.loc[key].items()}
    row.update(benchmark="synth", method="latent_memory", k="5")
    row["tokens_full"] += 0.001  # unrounded, as lmem.score writes it: rounded like results.csv
    same = with_rows(reference, [row])
    assert not [f for f in regress.compare(same, reference, tolerances) if f.failed]
    moved = with_rows(reference, [dict(row, f1=row["f1"] + 5.0)])
    assert [f for f in regress.compare(moved, reference, tolerances) if f.failed]
    assert reference.loc[key, "f1"] == same.loc[key, "f1"]  # the reference itself is left as it was


def with_environments(tmp_path, change, new_fingerprint: str, ref_fingerprint: str = "a" * 16) -> tuple[str, str]:
    """A perturbed table and a copy of the reference, each with an environment.json of the given fingerprint."""
    (tmp_path / "new").mkdir()
    (tmp_path / "ref").mkdir()
    new = perturbed(tmp_path / "new", change)
    ref = tmp_path / "ref" / "results.csv"
    ref.write_text(REFERENCE.read_text())
    env = {"cpu": {"model": "AMD EPYC", "isa": "AVX2"}, "threads": 2, "packages": {"torch": "2.13.0+cpu"}}
    (tmp_path / "ref" / "environment.json").write_text(json.dumps(dict(env, fingerprint=ref_fingerprint)))
    (tmp_path / "new" / "environment.json").write_text(
        json.dumps(dict(env, fingerprint=new_fingerprint, cpu={"model": "Intel Xeon", "isa": "AVX-512"})))
    return new, str(ref)


def moved(method: str, column: str, delta: float, benchmark: str = "synth"):
    def change(df):
        row = df.index[(df.benchmark == benchmark) & (df.method == method)][0]
        df.loc[row, column] += delta
        return df
    return change


@pytest.mark.parametrize("method,column,delta,same_machine,strict,code", [
    ("latent_memory", "f1", 5.0, False, False, 0),        # a trained row: the cross-machine band
    ("latent_memory", "recall_at_k", 0.08, False, False, 0),
    ("latent_memory", "f1", 5.0, True, False, 1),         # the same arithmetic: the exact band
    ("latent_memory", "f1", 5.0, False, True, 1),         # --strict
    ("latent_memory", "f1", 60.0, False, False, 1),       # beyond even the cross-machine band
    ("latent_memory", "tokens_context", 1, False, False, 1),  # columns cross_machine does not name stay exact
    ("xrag", "f1", 5.0, False, False, 0),                 # the xRAG projector is trained too
    ("bm25", "f1", 5.0, False, False, 1),                 # untrained methods keep the exact band
])
def test_trained_rows_across_machines(tmp_path, monkeypatch, capsys, method, column, delta, same_machine, strict,
                                      code):
    monkeypatch.chdir(ROOT)
    new, ref = with_environments(tmp_path, moved(method, column, delta), "a" * 16 if same_machine else "b" * 16)
    args = [new, "--reference", ref, "--config", "config/ci.yaml"] + (["--strict"] if strict else [])
    assert run(args) == code
    out = capsys.readouterr().out
    if same_machine:
        assert "other float arithmetic" not in out
    else:
        assert "other float arithmetic" in out and "cpu.model AMD EPYC -> Intel Xeon" in out


@pytest.mark.parametrize("seeded", [True, False])
def test_rows_on_seeded_work_keep_the_exact_band_across_machines(tmp_path, monkeypatch, capsys, seeded):
    """Trained work copied from the reference's seeds (lmem/seed.py) has the reference's weights: only inference ran
    on the other machine, so its rows are compared as untrained rows are (a zeroed projection must not pass)."""
    monkeypatch.chdir(ROOT)
    new, ref = with_environments(tmp_path, moved("latent_memory", "f1", 5.0), "b" * 16)
    folders = {w for cell in pd.read_csv(new)["work"].dropna() for w in cell.split()}
    assert any(w.startswith("compressors/") for w in folders)
    for w in folders:  # the run's work folders (work_dir beside the table's profile folder), seeded or retrained
        folder = tmp_path / "work" / "/".join(w.split("/")[:2])
        (folder / "best").mkdir(parents=True, exist_ok=True)
        (folder / "best" / "compressor.safetensors").write_bytes(b"the seed's weights")
        manifest = {"files": {"best/compressor.safetensors": sha256_file(folder / "best/compressor.safetensors")},
                    "packages": {}}
        (folder / "seed.json").write_text(json.dumps(manifest))
        if not seeded:  # retrained after seeding (make ci-fresh in the same folder): the manifest stays, not the bytes
            (folder / "best" / "compressor.safetensors").write_bytes(b"weights trained here")
    assert run([new, "--reference", ref, "--config", "config/ci.yaml"]) == (1 if seeded else 0)
    assert ("read trained work seeded from the reference" in capsys.readouterr().out) == seeded


@pytest.mark.parametrize("column,delta,code", [("f1", 30.0, 0), ("recall_at_k", 0.5, 0), ("tokens_context", 1, 1)])
def test_trained_subsets_across_machines(tmp_path, monkeypatch, column, delta, code):
    """A question-type subset (a few questions) of a trained row: only the columns cross_machine does not name."""
    monkeypatch.chdir(ROOT)
    new, ref = with_environments(tmp_path, moved("latent_memory", column, delta, "synth[single]"), "b" * 16)
    assert run([new, "--reference", ref, "--config", "config/ci.yaml"]) == code


def test_trained_rows_are_told_by_the_profile():
    from lmem.config import load_config

    cfg = load_config(ROOT / "config" / "ci.yaml")
    assert regress.trained(cfg, "synth", "latent_memory") and regress.trained(cfg, "synth[single]", "xrag_shuffled")
    assert regress.trained(cfg, "hotpotqa", "latent_memory_global")
    assert not regress.trained(cfg, "synth", "bm25") and not regress.trained(cfg, "synth", "closed_book")
    demo = load_config(ROOT / "config" / "demo.yaml")
    assert not regress.trained(demo, "synth", "latent_memory_untrained")  # checkpoint: init


def test_a_broken_environment_file_is_a_clear_error(tmp_path, capsys):
    new, ref = with_environments(tmp_path, lambda df: df, "b" * 16)
    Path(ref).with_name("environment.json").write_text("{not json")
    assert run([new, "--reference", ref]) == 2
    assert "environment.json: not JSON" in capsys.readouterr().err


def test_the_fingerprint_sees_the_kernels():
    """The same process gives the same fingerprint; torch's scalar kernels (ATEN_CPU_CAPABILITY=default) another
    (or AVX2's, where this process already runs the scalar ones)."""
    import os
    import subprocess
    import sys

    from lmem.numerics import fingerprint

    other_kernels = "avx2" if os.environ.get("ATEN_CPU_CAPABILITY") == "default" else "default"
    env = dict(os.environ, ATEN_CPU_CAPABILITY=other_kernels)
    other = subprocess.Popen([sys.executable, "-c", "from lmem.numerics import fingerprint; print(fingerprint())"],
                             env=env, stdout=subprocess.PIPE, text=True)  # beside this process's two
    here = fingerprint()
    assert here == fingerprint() and len(here) == 16
    out, _ = other.communicate(timeout=300)
    assert other.returncode == 0 and len(out.strip()) == 16 and out.strip() != here
