"""lmem_retrieval: recall@k and precision@k of retrieved evidence ids against gold ids (examples without gold
are left out of the mean and reported as None per example). `gold_sets` (one entry per example, None or a list of
alternative complete gold sets, as WiCE gives) makes recall the best set's."""

import datasets
import evaluate

from lmem.metrics.qa import precision_at_k, recall_at_k


class LmemRetrieval(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="recall@k and precision@k against gold evidence", citation="",
            inputs_description="predictions: retrieved ids; references: gold ids",
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("string")),
                                        "references": datasets.Sequence(datasets.Value("string"))}))

    def _compute(self, predictions, references, gold_sets=None):
        sets = gold_sets or [None] * len(predictions)
        per = {"recall_at_k": [recall_at_k(p, r, s) for p, r, s in zip(predictions, references, sets)],
               "precision_at_k": [precision_at_k(p, r) for p, r in zip(predictions, references)]}
        out = {}
        for name, values in per.items():
            defined = [v for v in values if v is not None]
            out[name] = sum(defined) / len(defined) if defined else None
        return {**out, "per_example": per}
