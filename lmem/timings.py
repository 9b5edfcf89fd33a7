"""Where the time goes: one row per DAG job from Snakemake's `benchmark:` files, and a per-rule summary.

Every rule that does real work (prepare, train, train_xrag, train_vision, index, run) writes
`results/<profile>/benchmarks/<rule>/<job>.tsv` (Snakemake measures wall seconds `s` and peak resident memory
`max_rss`, MB). `timings.csv` holds one row per job (`rule`, `job`, `s`, `max_rss`); `timings.md` sums them by
rule. The sum of job seconds is CPU-serial time: with `--cores N` jobs overlap, so a run's wall time can be less.
A job the fork server ran (lmem/worker.py) has its child's peak memory beside its benchmark file (`<file>.worker`);
its max_rss is the larger of the two. A job whose benchmark file is missing is an error (it has not run, or its file
was removed): the table accounts for every job the report covers, and only those.

A trained-work job (train, train_xrag, train_vision) writes its file under `<work_dir>/benchmarks/<rule>/<id>.tsv`
and is named `<rule>/<entry>=<that file>`: a profile that reuses another's training reports the time it took.

Usage: python -m lmem.timings --benchmarks results/<profile>/benchmarks --jobs train/smollm2=FILE run/synth/bm25/k5 ...
       --out-dir results/<profile>
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from lmem.io import InputError, atomic_path, write_text
from lmem.worker import memory_file

COLUMNS = ["rule", "job", "s", "max_rss"]


def read_job(bench_dir: Path, job: str) -> dict:
    """One row from `<rule>/<name>` (its file under bench_dir) or `<rule>/<name>=<path>` (trained work, whose file
    is under work_dir, named by work id)."""
    job, _, where = job.partition("=")
    path = Path(where) if where else bench_dir / f"{job}.tsv"
    if not path.exists():
        raise InputError(f"{path}: no benchmark file for job {job!r} (has it run?); rerun the DAG to make it")
    df = pd.read_csv(path, sep="\t")
    if df.empty or not {"s", "max_rss"} <= set(df.columns):
        raise InputError(f"{path}: not a Snakemake benchmark file (columns s, max_rss); delete it and rerun the job")
    rule, _, name = job.partition("/")
    max_rss = pd.to_numeric(df["max_rss"].iloc[-1], errors="coerce")  # "-" when not measured
    served = Path(memory_file(path))  # a job the fork server ran: its child's peak (lmem.worker)
    if served.exists():
        child = float(json.loads(served.read_text())["max_rss"])
        max_rss = child if pd.isna(max_rss) else max(float(max_rss), child)
    return {"rule": rule, "job": name, "s": round(float(df["s"].iloc[-1]), 2),
            "max_rss": None if pd.isna(max_rss) else round(float(max_rss), 1)}


def per_rule(df: pd.DataFrame) -> pd.DataFrame:
    g = df.groupby("rule", sort=False)
    out = pd.DataFrame({"jobs": g.size(), "s_total": g["s"].sum(), "s_max": g["s"].max(),
                        "max_rss": g["max_rss"].max()}).reset_index()
    out = out.sort_values("s_total", ascending=False).reset_index(drop=True)
    out["share"] = (100 * out["s_total"] / max(out["s_total"].sum(), 1e-9)).round(1)
    return out.round({"s_total": 1, "s_max": 1, "max_rss": 0})


def timings(bench_dir: str | Path, jobs: list[str], out_dir: str | Path) -> pd.DataFrame:
    bench_dir, out = Path(bench_dir), Path(out_dir)
    df = pd.DataFrame([read_job(bench_dir, j) for j in sorted(set(jobs))], columns=COLUMNS)
    with atomic_path(out / "timings.csv") as tmp:
        df.to_csv(tmp, index=False)
    summary = per_rule(df)
    total = df["s"].sum()
    md = [f"# Timings ({len(df)} jobs, {total / 60:.1f} min of job time)", "",
          summary.to_markdown(index=False), "",
          "Seconds are wall time per job (Snakemake `benchmark:`), max_rss the peak resident memory in MB; "
          "`share` is the rule's part of the summed job time. Per job: timings.csv."]
    write_text(out / "timings.md", "\n".join(md) + "\n")
    return summary


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--benchmarks", required=True, help="the profile's benchmarks/ folder")
    ap.add_argument("--jobs", nargs="+", required=True,
                    help="<rule>/<job> paths under it, without .tsv, or <rule>/<job>=<file> (trained work)")
    ap.add_argument("--out-dir", required=True)
    args = ap.parse_args(argv)
    print(timings(args.benchmarks, args.jobs, args.out_dir).to_string(index=False))


if __name__ == "__main__":
    main()
