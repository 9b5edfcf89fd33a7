"""lmem_qa: exact match, token F1 and answer-containment accuracy, each the max over references. `metric` names
the benchmark's official F1 rule (lmem.metrics.qa.F1_RULES: hotpotqa, 2wikimultihopqa, squad, webqa)."""

import datasets
import evaluate

from lmem.metrics.qa import F1_RULES, best_over_references, contains, exact_match

_DESCRIPTION = "SQuAD/HotpotQA-normalised EM and F1 (max over references) and answer-containment accuracy."


class LmemQa(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation="", inputs_description="predictions: str; references: list[str]",
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Sequence(datasets.Value("string"))}))

    def _compute(self, predictions, references, metric="hotpotqa"):
        per = {name: [best_over_references(fn, p, r) for p, r in zip(predictions, references)]
               for name, fn in (("em", exact_match), ("f1", F1_RULES[metric]), ("acc", contains))}
        n = max(len(predictions), 1)
        return {**{k: 100 * sum(v) / n for k, v in per.items()}, "per_example": per}
