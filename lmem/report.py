"""Stage `report`: the tidy results table (CSV + Markdown), one accuracy-vs-generator-token plot per benchmark and
one storage-vs-accuracy plot (bytes per stored evidence item) per benchmark.

Usage: python -m lmem.report --rows ROW.json ... --out-dir results/<profile> --x tokens_no_system --y f1
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from matplotlib.transforms import Bbox

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


MARKERS = {("pool", "paper"): "o", ("global", "paper"): "^", ("pool", "compact"): "s", ("global", "compact"): "D"}


def method_colors(methods) -> dict[str, str]:
    """One colour per method name, the same on every plot of a report (tab10, then Dark2 and Set1: 27 distinct)."""
    palette = [c for name in ("tab10", "Dark2", "Set1") for c in matplotlib.colormaps[name].colors]
    return {m: matplotlib.colors.to_hex(palette[i % len(palette)]) for i, m in enumerate(sorted(set(methods)))}


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def place_labels(ax, xs: list[float], ys: list[float], labels: list[str], fontsize: float = 7) -> list:
    """Annotate each point with its label where the label's box meets no other label's box and no marker: candidate
    offsets on rings of growing radius around the point, the first free one taken (points in order of x, so the
    result is deterministic); a leader line joins a label set away from its point. Returns the text artists."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    taken = []
    for x, y in zip(xs, ys):  # the markers themselves (about 7 px across)
        px, py = ax.transData.transform((x, y))
        taken.append(Bbox([[px - 4, py - 4], [px + 4, py + 4]]))
    frame = ax.get_window_extent(renderer)
    texts = []
    for i in sorted(range(len(xs)), key=lambda j: (xs[j], ys[j], labels[j])):
        px, py = ax.transData.transform((xs[i], ys[i]))
        probe = ax.text(0, 0, labels[i], fontsize=fontsize, transform=None)
        w, h = probe.get_window_extent(renderer).width, probe.get_window_extent(renderer).height
        probe.remove()
        chosen = None
        for radius in [6 + 5 * r for r in range(40)]:
            for angle in (30, -30, 150, -150, 90, -90, 0, 180, 60, -60, 120, -120):
                dx, dy = radius * math.cos(math.radians(angle)), radius * math.sin(math.radians(angle))
                x0 = px + dx if dx >= 0 else px + dx - w
                y0 = py + dy if dy >= 0 else py + dy - h
                box = Bbox([[x0, y0], [x0 + w, y0 + h]])
                inside = (box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0 and box.y1 <= frame.y1)
                if inside and not any(_overlaps(box, t) for t in taken):
                    chosen = box
                    break
            if chosen is not None:
                break
        if chosen is None:  # nowhere free inside the axes: beside the point, accepted
            chosen = Bbox([[px + 6, py + 6], [px + 6 + w, py + 6 + h]])
        taken.append(chosen)
        far = math.hypot(chosen.x0 - px, chosen.y0 - py) > 20
        t = ax.annotate(labels[i], (xs[i], ys[i]), xytext=ax.transData.inverted().transform((chosen.x0, chosen.y0)),
                        textcoords="data", fontsize=fontsize, ha="left", va="bottom",
                        arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.5"} if far else None)
        texts.append(t)
    return texts


def plot_benchmark(df: pd.DataFrame, benchmark: str, x: str, y: str, out_dir: Path, colors: dict | None = None,
                   name: str | None = None) -> list[Path]:
    """One scatter plot of a benchmark's rows: `y` against `x` (log axis, plain-number ticks), one colour per
    method (`colors`, shared by a report's plots), marker by retrieval (pool / global) and latent layout (paper /
    compact), labels that never overlap, and a Pareto frontier per generator (the main generator's dashed; another
    generator's points hollow, with a dotted frontier of their own, named in the legend)."""
    matplotlib.use("Agg")
    sub = df[df["benchmark"] == benchmark].reset_index(drop=True)
    colors = colors or method_colors(sub["method"])
    fig, ax = plt.subplots(figsize=(7.2, 5.0))
    xs = [max(float(v), 1.0) for v in sub[x]]  # log axis: closed-book can have 0 context tokens
    ys = [float(v) for v in sub[y]]
    main = sub["generator"].mode().iloc[0] if len(sub) else ""
    for i, r in sub.iterrows():
        marker = MARKERS.get((r.get("retrieval") or "pool", r.get("latent_layout") or "paper"), "o")
        own = r["generator"] == main
        ax.scatter(xs[i], ys[i], s=36, zorder=3, marker=marker, edgecolors=colors[r["method"]],
                   facecolors=colors[r["method"]] if own else "none", linewidths=1.2)
        if y == "f1" and not math.isnan(r["f1_ci_low"]):
            ax.plot([xs[i], xs[i]], [r["f1_ci_low"], r["f1_ci_high"]], color=colors[r["method"]], lw=1, alpha=0.5)
    for gen in [main] + sorted(set(sub["generator"]) - {main}):
        idx = [i for i in range(len(sub)) if sub["generator"][i] == gen]
        front = [idx[j] for j in pareto([(xs[i], ys[i]) for i in idx])]
        label = "Pareto frontier" if gen == main else f"frontier, generator {gen}"
        ax.plot([xs[i] for i in front], [ys[i] for i in front], ls="--" if gen == main else ":",
                color="k" if gen == main else "0.45", lw=1, label=label, zorder=2)
    ax.set_xscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(f"{x} per {'item' if x == 'bytes_per_item' else 'question'} (log)")
    ax.set_ylabel(y.upper() if len(y) <= 3 else y)
    n = int(sub["n"].max()) if len(sub) else 0
    ax.set_title(f"{benchmark}: {y} vs {x} (n={n}, {main})", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    handles = [plt.Line2D([], [], marker=m, ls="", color="0.3", label=f"{ret}, {lay} layout")
               for (ret, lay), m in MARKERS.items()
               if ((sub.get("retrieval", pd.Series(dtype=str)).fillna("").replace("", "pool") == ret) &
                   (sub.get("latent_layout", pd.Series(dtype=str)).fillna("").replace("", "paper") == lay)).any()]
    ax.legend(handles=ax.get_legend_handles_labels()[0] + (handles if len(handles) > 1 else []), fontsize=7,
              loc="best")
    fig.tight_layout()
    labels = [r["method"] if r["k"] == "all" else f"{r['method']}@{r['k']}" for _, r in sub.iterrows()]
    place_labels(ax, xs, ys, labels)
    paths = []
    for ext in ("png", "svg"):
        path = out_dir / f"{name or benchmark}.{ext}"
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
    colors = method_colors(df["method"])
    for bench in sorted(df["benchmark"].unique()):
        rows_b = df[df["benchmark"] == bench]
        # WebQA-style benchmarks (every row has the official accuracy) are plotted by it
        y_b = "webqa_acc" if y == "f1" and rows_b["webqa_acc"].notna().all() else y
        plot_benchmark(df, bench, x, y_b, out / "plots", colors)
        stored = rows_b[rows_b["bytes_per_item"] > 0]
        if stored["method"].nunique() > 1 and "[" not in bench:  # storage vs accuracy (issue 15)
            plot_benchmark(stored, bench, "bytes_per_item", y_b, out / "plots", colors, f"{bench}.storage")
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
