"""`lmem regress`: the committed reference passes against itself; perturbed tables fail, harmless noise passes."""

from pathlib import Path

import pandas as pd
import pytest

from lmem import regress

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
