"""Stage `score`: metrics for one predictions file, per question and aggregated, with bootstrap intervals.

Usage: python -m lmem.score --predictions PRED.jsonl --data DATA.jsonl --out ROW.json [--bootstrap N --seed S]
Writes the result row (ROW.json) and per-question scores beside it (ROW.questions.jsonl).
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import numpy as np

from lmem.config import config_hash
from lmem.io import read_jsonl, write_json, write_jsonl
from lmem.metrics import load
from lmem.metrics.qa import metric_for
from lmem.prepare import meta_path, read_examples
from lmem.records import Example, Prediction, ResultRow
from lmem.specs import without_locations
from lmem.stage import setup

SUBSET_KEYS = ("modality", "type")  # question metadata whose values get rows of their own


def bootstrap_ci(values: list[float], samples: int, seed: int) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean (same seed, same interval)."""
    if not values:
        return float("nan"), float("nan")
    arr = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, len(arr), size=(samples, len(arr)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def score(predictions_path: str, data_path: str, samples: int, seed: int) -> tuple[ResultRow | dict, list[dict]]:
    """The result row and per-question scores; for a skipped run, {benchmark, method, k, skipped} and []. When the
    questions have several modalities (WebQA's image and text questions) or types (bridge / comparison), the row is
    a dict whose `subsets` holds one row per value, benchmark `<name>[image]`, `<name>[bridge]`, ..."""
    preds = [Prediction.from_dict(d) for d in read_jsonl(predictions_path)]
    run_meta = json.loads(Path(meta_path(predictions_path)).read_text())
    data_meta = json.loads(Path(meta_path(data_path)).read_text())
    if run_meta.get("skipped"):  # the method could not run here; the report lists it with the reason
        return {"benchmark": data_meta["benchmark"], "method": run_meta["method"], "k": run_meta["k"],
                "skipped": run_meta["skipped"]}, []
    if not preds:
        raise SystemExit(f"{predictions_path}: no predictions to score")
    examples = {ex.id: ex for ex in read_examples(data_path)}
    result, per_q = _row(preds, preds[0].benchmark, run_meta, data_meta, examples, samples, seed)
    subsets = []
    # WebQA's image and text questions, and the question types (HotpotQA's bridge and comparison questions, 2Wiki's
    # four), are also reported on their own, as `<benchmark>[<value>]`
    for key in SUBSET_KEYS:
        values = sorted({p.metadata.get(key) for p in preds} - {None})
        if len(values) > 1:
            for v in values:
                sub = [p for p in preds if p.metadata.get(key) == v]
                subsets.append(_row(sub, f"{preds[0].benchmark}[{v}]", run_meta, data_meta, examples, samples,
                                    seed)[0].to_dict())
    if subsets:
        result = {**result.to_dict(), "subsets": subsets}
    return result, per_q


def _row(preds: list[Prediction], benchmark: str, run_meta: dict, data_meta: dict, examples: dict[str, Example],
         samples: int, seed: int) -> tuple[ResultRow, list[dict]]:
    metric = data_meta.get("metric") or metric_for(data_meta["spec"])
    qa = load("lmem_qa").compute(predictions=[p.prediction for p in preds], references=[p.answers for p in preds],
                                 metric=metric)
    gold_sets = [examples[p.example_id].metadata.get("gold_sets") if p.example_id in examples else None
                 for p in preds]
    ret = load("lmem_retrieval").compute(predictions=[p.retrieved_ids for p in preds],
                                         references=[p.gold_ids for p in preds], gold_sets=gold_sets)
    pool_bytes = [len(e.text.encode()) for ex in examples.values() for e in ex.pool]
    qcates = [p.metadata.get("qcate") for p in preds]
    webqa = None
    if all(qcates):
        webqa = load("lmem_webqa").compute(predictions=[p.prediction for p in preds],
                                           references=[p.answers for p in preds], qcates=qcates)
    per_q = []
    for i, p in enumerate(preds):
        row = {"example_id": p.example_id, "prediction": p.prediction, **{m: qa["per_example"][m][i] for m in
               ("em", "f1", "acc")}, **{m: ret["per_example"][m][i] for m in ("recall_at_k", "precision_at_k")},
               "tokens_full": p.tokens_full, "tokens_no_system": p.tokens_no_system,
               "tokens_context": p.tokens_context, "n_dropped": p.n_dropped}
        if webqa:
            row["webqa_acc"] = webqa["per_example"]["webqa_acc"][i]
        per_q.append(row)
    f1s = [100 * r["f1"] for r in per_q]
    accs = [100 * r["acc"] for r in per_q]
    spec = run_meta["spec"]
    method = spec.get("method_spec", {})
    f1_ci, acc_ci = bootstrap_ci(f1s, samples, seed), bootstrap_ci(accs, samples, seed)
    result = ResultRow(
        benchmark=benchmark, method=preds[0].method, k=preds[0].k, generator=run_meta["generator"]["spec"],
        n=len(preds), em=qa["em"], f1=qa["f1"], acc=qa["acc"], recall_at_k=ret["recall_at_k"],
        precision_at_k=ret["precision_at_k"],
        tokens_full=float(np.mean([p.tokens_full for p in preds])),
        tokens_no_system=float(np.mean([p.tokens_no_system for p in preds])),
        tokens_context=float(np.mean([p.tokens_context for p in preds])),
        f1_ci_low=f1_ci[0], f1_ci_high=f1_ci[1], acc_ci_low=acc_ci[0], acc_ci_high=acc_ci[1],
        webqa_acc=webqa["webqa_acc"] if webqa else None,
        n_truncated=sum(p.n_dropped > 0 for p in preds), n_dropped_items=sum(p.n_dropped for p in preds),
        n_skipped_records=data_meta.get("n_skipped", 0), n_truncated_items=data_meta.get("n_truncated_items", 0),
        n_control_chars=data_meta.get("n_control_chars", 0),
        bytes_per_item=run_meta.get("bytes_per_item") or (float(np.mean(pool_bytes)) if pool_bytes else 0.0),
        seconds=run_meta["seconds"], seed=spec["seed"],
        config_hash=config_hash({"run": without_locations(spec), "data": data_meta["spec"]}),
        git_commit=run_meta.get("git_commit", "unknown"), generator_sha256=run_meta["generator"]["sha256"],
        data_sha256=data_meta.get("source_sha256") or data_meta["sha256"],
        models=";".join(f"{k}={v}" for k, v in sorted(run_meta.get("models", {}).items())), metric=metric,
        retrieval="" if preds[0].k == "all" else method.get("retrieval", "pool"),
        latent_layout=(method.get("latent_layout") or spec.get("prompt", {}).get("latent_layout", "paper")
                       if method.get("class", spec.get("method")) in ("latent_memory", "xrag") else ""),
        work=spec.get("work", ""),
    )
    return result, per_q


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--predictions", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    setup()
    row, per_q = score(args.predictions, args.data, args.bootstrap, args.seed)
    write_jsonl(args.out[: -len(".json")] + ".questions.jsonl", per_q)
    write_json(args.out, row if isinstance(row, dict) else row.to_dict())


if __name__ == "__main__":
    main()
