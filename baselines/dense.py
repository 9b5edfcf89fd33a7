"""Dense top-k over each question's pool by cosine similarity. Default: all-MiniLM-L6-v2 (config: retriever), mean
pooling. Options: `model` (another encoder), `pooling` (mean | last), `query_instruction` (prefixed to each query).
The paper's Qwen3-Embedding-0.6B baseline (GPU profiles) is
`dense_qwen3: {class: dense, model: Qwen/Qwen3-Embedding-0.6B, pooling: last, query_instruction: "Instruct: Given a
question, retrieve passages that answer it\\nQuery: "}`."""

from lmem.baselines import TextEvidenceBaseline
from lmem.encoders import DenseEncoder


class Dense(TextEvidenceBaseline):
    name = "dense"

    def select(self, examples, k):
        encoder = DenseEncoder(self.spec.get("model") or self.config["retriever"]["model"], self.config["retriever"],
                               self.spec.get("pooling", "mean"), self.spec.get("query_instruction", ""))
        self.models = {"retriever": encoder.resolved.tag}
        return [[ex.pool[i] for i in best] for ex, (best, _) in zip(examples, encoder.rank_pools(examples, k))]
