"""Stage `report`: the tidy results table (CSV + Markdown) and one accuracy-vs-generator-token plot per benchmark.

Usage: python -m lmem.report --rows ROW.json ... --out-dir results/<profile> --x tokens_no_system --y f1
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd

from lmem.io import atomic_path, write_text
from lmem.records import ResultRow

COLUMNS = list(ResultRow.__dataclass_fields__)
ROUND = {"em": 2, "f1": 2, "acc": 2, "webqa_acc": 2, "recall_at_k": 4, "precision_at_k": 4, "tokens_full": 2,
         "tokens_no_system": 2, "tokens_context": 2, "f1_ci_low": 2, "f1_ci_high": 2, "acc_ci_low": 2,
         "acc_ci_high": 2, "bytes_per_item": 1}


def _k_order(k: str) -> int:
    return -1 if k == "all" else int(k)


def table(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["_k"] = df["k"].map(_k_order)
    df = df.sort_values(["benchmark", "method", "_k"]).drop(columns="_k").reset_index(drop=True)
    return df.round(ROUND)


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated by one with fewer-or-equal tokens and higher-or-equal score."""
    keep = []
    for i, (x, y) in enumerate(points):
        if not any((x2 <= x and y2 >= y) and (x2, y2) != (x, y) for x2, y2 in points):
            keep.append(i)
    return sorted(keep, key=lambda i: points[i][0])


def plot_benchmark(df: pd.DataFrame, benchmark: str, x: str, y: str, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sub = df[df["benchmark"] == benchmark].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    xs = [max(float(v), 1.0) for v in sub[x]]  # log axis: closed-book can have 0 context tokens
    ys = [float(v) for v in sub[y]]
    colors = {m: f"C{i}" for i, m in enumerate(sorted(sub["method"].unique()))}
    for i, r in sub.iterrows():
        label = r["method"] if r["k"] == "all" else f"{r['method']}@{r['k']}"
        ax.scatter(xs[i], ys[i], color=colors[r["method"]], s=36, zorder=3)
        ax.annotate(label, (xs[i], ys[i]), textcoords="offset points", xytext=(4, 4), fontsize=7)
        if y == "f1" and not math.isnan(r["f1_ci_low"]):
            ax.plot([xs[i], xs[i]], [r["f1_ci_low"], r["f1_ci_high"]], color=colors[r["method"]], lw=1, alpha=0.5)
    front = pareto(list(zip(xs, ys)))
    ax.plot([xs[i] for i in front], [ys[i] for i in front], "k--", lw=1, label="Pareto frontier", zorder=2)
    ax.set_xscale("log")
    ax.set_xlabel(f"generator {x} per question (log)")
    ax.set_ylabel(y.upper() if len(y) <= 3 else y)
    n = int(sub["n"].max()) if len(sub) else 0
    ax.set_title(f"{benchmark}: {y} vs generator tokens (n={n}, {sub['generator'].iloc[0] if len(sub) else ''})",
                 fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    paths = []
    for ext in ("png", "svg"):
        path = out_dir / f"{benchmark}.{ext}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=120)
        paths.append(path)
    plt.close(fig)
    return paths


def report(row_paths: list[str], out_dir: str, x: str, y: str) -> pd.DataFrame:
    rows = [json.loads(Path(p).read_text()) for p in row_paths]
    rows += [sub for r in rows for sub in r.pop("subsets", [])]  # WebQA's image / text question subsets
    skipped = [r for r in rows if r.get("skipped")]
    df = table([r for r in rows if not r.get("skipped")])
    out = Path(out_dir)
    with atomic_path(out / "results.csv") as tmp:
        df.to_csv(tmp, index=False)
    shown = ["benchmark", "method", "k", "n", "em", "f1", "f1_ci_low", "f1_ci_high", "acc", "recall_at_k",
             "tokens_full", "tokens_no_system", "tokens_context", "n_truncated"]
    if df["webqa_acc"].notna().any():  # image benchmarks: WebQA's official accuracy too
        shown.insert(shown.index("recall_at_k"), "webqa_acc")
    md = [f"# Results ({len(df)} rows)", "", df[shown].to_markdown(index=False), "",
          f"Generator: {', '.join(sorted(df['generator'].unique()))}. Seeds: "
          f"{', '.join(map(str, sorted(df['seed'].unique())))}. "
          f"Commits: {', '.join(sorted(map(str, df['git_commit'].unique())))}.",
          "Full provenance (config hash, model and data hashes) is in results.csv."]
    if skipped:
        md += ["", f"## Not run ({len(skipped)})", ""]
        md += [f"- {r['benchmark']} / {r['method']} k={r['k']}: {r['skipped']}" for r in skipped]
    write_text(out / "results.md", "\n".join(md) + "\n")
    (out / "plots").mkdir(parents=True, exist_ok=True)
    for bench in sorted(df["benchmark"].unique()):
        rows_b = df[df["benchmark"] == bench]
        # WebQA-style benchmarks (every row has the official accuracy) are plotted by it
        y_b = "webqa_acc" if y == "f1" and rows_b["webqa_acc"].notna().all() else y
        plot_benchmark(df, bench, x, y_b, out / "plots")
    return df


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", nargs="+", required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--x", default="tokens_no_system")
    ap.add_argument("--y", default="f1")
    args = ap.parse_args(argv)
    report(args.rows, args.out_dir, args.x, args.y)


if __name__ == "__main__":
    main()
