"""`lmem regress`: compare a results table with a reference table and fail on any drift beyond tolerance.

Rows are matched on (benchmark, method, k). Each column named in the profile's `regress.tolerances` may move by at
most its tolerance (0 = exact: token counts, question counts, truncation counts, storage bytes); a small band for
EM/F1/accuracy (percentage points) and recall/precision@k absorbs harmless float noise. A reference row missing from
the new table is a regression; a new row (a new method or benchmark) is reported but does not fail, so adding a
baseline only asks for the reference to be refreshed.

Usage:
  lmem regress results/ci/results.csv --config config/ci.yaml      # reference: results/reference/ci/results.csv
  lmem regress NEW.csv --reference OLD.csv                          # schema-default tolerances
Exit status: 0 when every reference row is present and within tolerance, 1 otherwise, 2 on unreadable input.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from lmem.config import SCHEMA_PATH, load_config
from lmem.io import InputError

KEY = ["benchmark", "method", "k"]


def default_tolerances() -> dict[str, float]:
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    return dict(schema["properties"]["regress"]["properties"]["tolerances"]["default"])


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


def compare(new: pd.DataFrame, reference: pd.DataFrame, tolerances: dict[str, float]) -> list[Finding]:
    findings = []
    for key in reference.index:
        if key not in new.index:
            findings.append(Finding(*key, "(row)", "present", "absent", None, "MISSING"))
            continue
        for column, tol in tolerances.items():
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
    args = ap.parse_args(argv)
    try:
        tolerances, reference = default_tolerances(), args.reference
        if args.config:
            cfg = load_config(args.config)
            tolerances = cfg["regress"]["tolerances"]
            reference = reference or cfg["regress"]["reference"] or f"results/reference/{cfg['name']}/results.csv"
        if not reference:
            raise InputError("no reference table: pass --reference PATH or --config PROFILE.yaml")
        findings = compare(read_table(args.results), read_table(reference), tolerances)
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
