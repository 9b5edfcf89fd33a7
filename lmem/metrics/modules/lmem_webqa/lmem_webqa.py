"""lmem_webqa: WebQA's official accuracy (category vocabularies for color/shape/YesNo, number extraction,
keyword recall for the rest), max over references."""

import datasets
import evaluate

from lmem.metrics.qa import webqa_accuracy


class LmemWebqa(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="WebQA accuracy", citation="", inputs_description="predictions, references, qcates",
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Sequence(datasets.Value("string")),
                                        "qcates": datasets.Value("string")}))

    def _compute(self, predictions, references, qcates):
        per = [max((webqa_accuracy(p, r, q) for r in refs), default=0.0)
               for p, refs, q in zip(predictions, references, qcates)]
        return {"webqa_acc": 100 * sum(per) / max(len(per), 1), "per_example": {"webqa_acc": per}}
