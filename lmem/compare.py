"""Paired comparison of two runs on the same questions: the mean difference of a per-question metric with a 95%
paired bootstrap interval (questions resampled together), from the score stage's `*.questions.jsonl` files.

Usage: python -m lmem.compare A.questions.jsonl B.questions.jsonl [--metric f1] [--samples 2000] [--seed 0]
"""

from __future__ import annotations

import argparse

import numpy as np

from lmem.io import InputError, read_jsonl


def paired_bootstrap(a: dict[str, float], b: dict[str, float], samples: int = 2000, seed: int = 0
                     ) -> tuple[float, float, float, int]:
    """(mean of a - b, 2.5th and 97.5th percentile of the bootstrapped mean difference, n) over shared ids."""
    ids = sorted(set(a) & set(b))
    if not ids:
        raise InputError("the two runs share no question ids; compare runs of the same benchmark")
    diff = np.array([a[i] - b[i] for i in ids], dtype=float)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(samples, len(diff)))].mean(axis=1)
    return float(diff.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)), len(ids)


def load_metric(path: str, metric: str) -> dict[str, float]:
    rows = list(read_jsonl(path))
    if rows and metric not in rows[0]:
        raise InputError(f"{path}: no per-question {metric!r}; have {sorted(rows[0])}")
    return {r["example_id"]: 100 * float(r[metric]) for r in rows if r[metric] is not None}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--metric", default="f1")
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    mean, low, high, n = paired_bootstrap(load_metric(args.a, args.metric), load_metric(args.b, args.metric),
                                          args.samples, args.seed)
    verdict = "excludes 0" if low > 0 or high < 0 else "includes 0"
    print(f"{args.metric}: A - B = {mean:+.2f} (95% paired bootstrap [{low:+.2f}, {high:+.2f}], n={n}; {verdict})")


if __name__ == "__main__":
    main()
