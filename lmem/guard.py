"""Does the regression guard guard? A profile's Latent Memory run redone with its projection zeroed (every
projected latent becomes the zero vector, so the generator reads nothing from its memory) must make `lmem regress`
fail against the profile's reference; the unchanged table must pass (`make regress` checks that first).

Usage (after the profile ran, e.g. `make regress`):
  python -m lmem.guard --config config/ci.yaml [--benchmark synth --method latent_memory --k 5]
Exit status: 0 when regress catches the zeroed projection, 1 when it does not (the reference pins nothing), 2 on
missing input.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from lmem.config import load_config
from lmem.io import InputError
from lmem.regress import compare, read_table, render
from lmem.report import ROUND
from lmem.run import run
from lmem.score import score
from lmem.stage import setup


def zero_projection(checkpoint: Path, out: Path) -> None:
    """A copy of a compressor checkpoint whose projection weights (LayerNorm gain and bias included) are zero."""
    out.mkdir(parents=True, exist_ok=True)
    state = load_file(str(checkpoint / "compressor.safetensors"))
    zeroed = [k for k in state if k.startswith("projection.")]
    if not zeroed:
        raise InputError(f"{checkpoint}: no projection tensors to zero")
    save_file({k: torch.zeros_like(v) if k in zeroed else v for k, v in state.items()},
              str(out / "compressor.safetensors"))
    (out / "compressor.json").write_text((checkpoint / "compressor.json").read_text())


def zeroed_rows(results: Path, benchmark: str, method: str, k: str, bootstrap: int, work: Path) -> list[dict]:
    """The result rows (the benchmark's and its subsets') of the method rerun with a zeroed projection."""
    pred = results / "predictions" / benchmark / method / f"k{k}"
    meta = Path(f"{pred}.meta.json")
    if not meta.exists():
        raise InputError(f"{meta}: no such run; run the profile first (make regress)")
    spec = json.loads(meta.read_text())["spec"]
    checkpoint = Path(spec["method_spec"]["checkpoint_dir"])
    zero_projection(checkpoint, work / "zeroed")
    spec["method_spec"]["checkpoint_dir"] = str(work / "zeroed")
    data = str(results / "data" / f"{benchmark}.jsonl")
    out = str(work / "predictions.jsonl")
    run(data, spec, k, out)
    row, _ = score(out, data, bootstrap, spec["seed"])
    row = row if isinstance(row, dict) else row.to_dict()
    return [row] + row.pop("subsets", [])


def with_rows(table: pd.DataFrame, rows: list[dict]) -> pd.DataFrame:
    """`table` (indexed by benchmark, method, k) with these result rows in place of its own."""
    table = table.copy()
    new = pd.DataFrame(rows).astype({"k": str}).set_index(["benchmark", "method", "k"])
    shared = [c for c in new.columns if c in table.columns]
    for c in shared:  # a value a row leaves empty (None) is NaN in a numeric column of the table
        if pd.api.types.is_numeric_dtype(table[c]):
            new[c] = pd.to_numeric(new[c], errors="coerce")
            if c in ROUND:  # rounded as results.csv is (lmem.report), so only real changes count
                new[c] = new[c].round(ROUND[c])
    table.loc[new.index, shared] = new[shared]
    return table


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--benchmark", default="synth")
    ap.add_argument("--method", default="latent_memory")
    ap.add_argument("--k", default="5")
    args = ap.parse_args(argv)
    setup(None)
    try:
        cfg = load_config(args.config)
        results = Path(cfg["results_dir"]) / cfg["name"]
        reference_path = cfg["regress"]["reference"] or f"results/reference/{cfg['name']}/results.csv"
        reference, table = read_table(reference_path), read_table(results / "results.csv")
        with tempfile.TemporaryDirectory() as tmp:
            rows = zeroed_rows(results, args.benchmark, args.method, args.k, cfg["metrics"]["bootstrap_samples"],
                               Path(tmp))
    except InputError as e:
        print(f"lmem guard: {e}", file=sys.stderr)
        sys.exit(2)
    findings = [f for f in compare(with_rows(table, rows), reference, cfg["regress"]["tolerances"]) if f.failed]
    print(f"{args.benchmark} / {args.method} k={args.k} with its projection zeroed: F1 {rows[0]['f1']:.1f} "
          f"(reference {reference.at[(args.benchmark, args.method, args.k), 'f1']:.1f})")
    if findings:
        print(render(findings))
        print(f"OK: lmem regress catches a zeroed projection ({len(findings)} values out of tolerance)")
        return
    print("GUARD FAILED: lmem regress passes with Latent Memory's projection zeroed; the reference pins a method "
          "that does not read its memory")
    sys.exit(1)


if __name__ == "__main__":
    main()
