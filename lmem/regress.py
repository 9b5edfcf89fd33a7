"""`lmem regress`: compare a results table with a reference table and fail on any drift beyond tolerance.

Rows are matched on (benchmark, method, k). Each column named in the profile's `regress.tolerances` may move by at
most its tolerance (0 = exact: token counts, question counts, truncation counts, storage bytes); a small band for
EM/F1/accuracy (percentage points) and recall/precision@k absorbs harmless float noise. A reference row missing from
the new table is a regression; a new row (a new method or benchmark) is reported but does not fail, so adding a
baseline only asks for the reference to be refreshed.

Trained rows across machines. A row of a method that reads a trained compressor or xRAG projector is bit for bit
reproducible only where the float arithmetic is the reference machine's: elsewhere a last-bit difference in one
kernel grows, over the training steps, into other weights and other answers. Each table has the `environment.json`
that the `report` stage writes beside it (lmem.numerics: a fingerprint of the kernels training uses). When both
fingerprints are present and differ, a trained row of a whole benchmark is compared at `regress.cross_machine`
(wider bands, measured between machines), and a trained row of a question-type subset (`synth[single]`: 3-50
questions, where one answer moves F1 by 2-33 points) only on the columns that band does not name; those keep their
tolerance (token, question and byte counts exact) and the output says what was done. Untrained rows, and every row
on a machine with the reference's fingerprint, are compared at `regress.tolerances`; so are rows whose trained work
was seeded from the reference (lmem/seed.py: the reference's own weights, only inference ran on this machine).

Usage:
  lmem regress results/ci/results.csv --config config/ci.yaml      # reference: results/reference/ci/results.csv
  lmem regress NEW.csv --reference OLD.csv                          # schema-default tolerances
  lmem regress ... --strict                                         # the exact check even across machines
Exit status: 0 when every reference row is present and within tolerance, 1 otherwise, 2 on unreadable input.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from lmem.config import SCHEMA_PATH, load_config, method_spec
from lmem.io import InputError
from lmem.seed import holds_seed, work_folders

KEY = ["benchmark", "method", "k"]


def default_tolerances() -> dict[str, float]:
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    return dict(schema["properties"]["regress"]["properties"]["tolerances"]["default"])


def trained(config: dict, benchmark: str, method: str) -> bool:
    """Whether the row's method reads a trained compressor or projector (`synth[single]` is synth's subset)."""
    base = benchmark.split("[")[0]
    if method not in config.get("methods", {}) or base not in config.get("benchmarks", {}):
        return False
    spec = method_spec(config, method, base)
    return bool(spec.get("projector")) or (bool(spec.get("compressor")) and spec.get("checkpoint") != "init")


def seeded_rows(table: pd.DataFrame, work_dir: Path) -> set[tuple[str, str]]:
    """(benchmark, method) of the rows whose every trained work folder (column `work`) holds a reference's seed, not
    weights trained in this run (lmem.seed.holds_seed: the seed's manifest and its weights' bytes)."""
    if "work" not in table.columns:
        return set()
    rows = {key: work_folders(cell) for key, cell in table["work"].items()}
    held = {f for f in set().union(*rows.values()) if holds_seed(work_dir / f)}  # each folder checked once
    return {key[:2] for key, folders in rows.items() if folders and set(folders) <= held}


def cross_machine(config: dict, tolerances: dict[str, float],
                  seeded: set[tuple[str, str]] = frozenset()) -> Callable[[str, str], dict[str, float] | None]:
    """The row tolerances across machines: trained rows at `regress.cross_machine`, their subsets only on the rest;
    rows whose trained work was `seeded` (the reference's own weights: only inference ran here) as untrained ones."""
    cross = config["regress"]["cross_machine"]
    whole = {**tolerances, **cross}
    subset = {c: t for c, t in tolerances.items() if c not in cross}

    def wider(benchmark: str, method: str) -> dict[str, float] | None:
        if not trained(config, benchmark, method) or (benchmark, method) in seeded:
            return None
        return subset if "[" in benchmark else whole
    return wider


def read_environment(table: str | Path) -> dict | None:
    """The `environment.json` beside a results table (lmem.numerics), or None where there is none."""
    path = Path(table).parent / "environment.json"
    if not path.exists():
        return None
    try:
        env = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not JSON ({e}); rerun the report stage or delete the file") from e
    if not isinstance(env, dict) or not env.get("fingerprint"):
        raise InputError(f"{path}: no `fingerprint` (write it with python -m lmem.numerics --out {path})")
    return env


def differences(new: dict, reference: dict) -> list[str]:
    """What differs between two environments, for the reader: fingerprint, CPU, threads, kernels, packages."""
    out = [f"fingerprint {reference['fingerprint']} -> {new['fingerprint']}"]
    for key in ("cpu", "threads", "kernel_env", "packages"):
        a, b = reference.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{key}.{k} {a.get(k)} -> {b.get(k)}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            out.append(f"{key} {a} -> {b}")
    return out


@dataclass
class Finding:
    benchmark: str
    method: str
    k: str
    column: str
    reference: object
    new: object
    tolerance: float | None
    status: str  # ok | DRIFT | MISSING | new row

    @property
    def failed(self) -> bool:
        return self.status in ("DRIFT", "MISSING")


def read_table(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such results table (run the profile first, or check --reference)")
    df = pd.read_csv(path, dtype={"k": str})
    missing = [c for c in KEY if c not in df.columns]
    if missing:
        raise InputError(f"{path}: not a results table: no column(s) {missing}")
    dup = df[df.duplicated(KEY, keep=False)]
    if len(dup):
        first = dup.iloc[0]
        raise InputError(f"{path}: row {tuple(first[KEY])} appears {len(dup)} times; one row per benchmark/method/k")
    return df.set_index(KEY)


def _number(value) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x


def compare(new: pd.DataFrame, reference: pd.DataFrame, tolerances: dict[str, float],
            wider: Callable[[str, str], dict[str, float] | None] | None = None) -> list[Finding]:
    """Every compared value. `wider(benchmark, method)`: a row's own tolerances, or None for `tolerances`."""
    findings = []
    for key in reference.index:
        if key not in new.index:
            findings.append(Finding(*key, "(row)", "present", "absent", None, "MISSING"))
            continue
        row_tolerances = (wider and wider(key[0], key[1])) or tolerances
        for column, tol in row_tolerances.items():
            if column not in reference.columns:
                continue
            ref = reference.at[key, column]
            got = new.at[key, column] if column in new.columns else None
            a, b = _number(ref), _number(got)
            if a is None or b is None or math.isnan(a) or math.isnan(b):
                same = (pd.isna(ref) and pd.isna(got)) or str(ref) == str(got)
            else:
                same = abs(b - a) <= tol + 1e-9
            findings.append(Finding(*key, column, ref, got, tol, "ok" if same else "DRIFT"))
    for key in new.index.difference(reference.index):
        findings.append(Finding(*key, "(row)", "absent", "present", None, "new row"))
    return findings


def render(findings: list[Finding], show_all: bool = False) -> str:
    shown = [f for f in findings if show_all or f.status != "ok"]
    if not shown:
        return ""
    rows = []
    for f in shown:
        a, b = _number(f.reference), _number(f.new)
        diff = f"{b - a:+.4g}" if a is not None and b is not None and not (math.isnan(a) or math.isnan(b)) else ""
        rows.append([f.benchmark, f.method, f.k, f.column, f.reference, f.new, diff,
                     "" if f.tolerance is None else f"{f.tolerance:g}", f.status])
    header = ["benchmark", "method", "k", "column", "reference", "new", "diff", "tolerance", "status"]
    return pd.DataFrame(rows, columns=header).to_markdown(index=False)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", help="the new results.csv")
    ap.add_argument("--config", help="profile whose `regress` section gives the reference and tolerances")
    ap.add_argument("--reference", help="reference results.csv (default: results/reference/<profile name>/)")
    ap.add_argument("--all", action="store_true", help="list every compared value, not only the failures")
    ap.add_argument("--strict", action="store_true",
                    help="compare trained rows at `regress.tolerances` even when the environments' fingerprints differ")
    args = ap.parse_args(argv)
    try:
        tolerances, reference, cfg = default_tolerances(), args.reference, None
        if args.config:
            cfg = load_config(args.config)
            tolerances = cfg["regress"]["tolerances"]
            reference = reference or cfg["regress"]["reference"] or f"results/reference/{cfg['name']}/results.csv"
        if not reference:
            raise InputError("no reference table: pass --reference PATH or --config PROFILE.yaml")
        wider, new = None, read_table(args.results)
        new_env, ref_env = read_environment(args.results), read_environment(reference)
        if new_env is None or ref_env is None:
            print(f"lmem regress: no environment.json beside {args.results if new_env is None else reference}: "
                  "every row compared at `regress.tolerances`, as on the reference's machine")
        elif new_env["fingerprint"] != ref_env["fingerprint"]:
            print("lmem regress: this table was computed with other float arithmetic than the reference's ("
                  + "; ".join(differences(new_env, ref_env)) + ")")
            if args.strict:
                print("lmem regress: --strict: trained rows compared at `regress.tolerances` all the same")
            elif cfg is None:
                print("lmem regress: no --config, so trained rows are not known: every row compared at the tolerances")
            else:
                work_dir = Path(cfg["work_dir"]) if cfg.get("work_dir") else Path(args.results).parent.parent / "work"
                seeded = seeded_rows(new, work_dir)
                wider = cross_machine(cfg, tolerances, seeded)
                if seeded:
                    print(f"lmem regress: {len(seeded)} rows read trained work seeded from the reference ({work_dir}: "
                          "its weights, only inference ran here): compared at `regress.tolerances`")
                print("lmem regress: rows of methods with a compressor or projector trained in this run compared at "
                      "`regress.cross_machine` (" + ", ".join(f"{k} {v:g}" for k, v in cfg["regress"]["cross_machine"]
                                                               .items()) + "), their question-type subsets only on "
                      "the other columns; the exact check of training needs a machine with the reference's fingerprint")
        findings = compare(new, read_table(reference), tolerances, wider)
    except InputError as e:
        print(f"lmem regress: {e}", file=sys.stderr)
        sys.exit(2)
    failed = [f for f in findings if f.failed]
    rows = len({(f.benchmark, f.method, f.k) for f in findings})
    table = render(findings, args.all)
    if table:
        print(table)
    print(f"\n{args.results} vs {reference}: {rows} rows, {sum(f.column != '(row)' for f in findings)} values "
          f"compared; {sum(f.status == 'DRIFT' for f in failed)} out of tolerance, "
          f"{sum(f.status == 'MISSING' for f in failed)} missing rows, "
          f"{sum(f.status == 'new row' for f in findings)} new rows")
    if failed:
        print("REGRESSION: fix the change, or if the new numbers are intended, copy the new table over the "
              "reference and say why in the commit.")
        sys.exit(1)
    print("OK: within tolerance of the reference")


if __name__ == "__main__":
    main()
