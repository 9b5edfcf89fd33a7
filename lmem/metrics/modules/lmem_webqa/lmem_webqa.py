"""lmem_webqa: WebQA's accuracy (lmem.metrics.webqa: category vocabularies as sets for color/shape/YesNo, integer
extraction for number, answer-word recall for the rest, after lemmas and number words), max over references."""

import datasets
import evaluate

from lmem.metrics.qa import best_over_references
from lmem.metrics.webqa import webqa_accuracy


class LmemWebqa(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="WebQA accuracy", citation="", inputs_description="predictions, references, qcates",
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Sequence(datasets.Value("string")),
                                        "qcates": datasets.Value("string")}))

    def _compute(self, predictions, references, qcates):
        per = [best_over_references(lambda pred, ref: webqa_accuracy(pred, ref, q), p, refs)
               for p, refs, q in zip(predictions, references, qcates)]
        return {"webqa_acc": 100 * sum(per) / max(len(per), 1), "per_example": {"webqa_acc": per}}
