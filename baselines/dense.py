"""Dense top-k over each question's pool by cosine similarity. Default: all-MiniLM-L6-v2 (config: retriever), mean
pooling. Options: `model` (another encoder), `pooling` (mean | last), `query_instruction` (prefixed to each query).
The paper's Qwen3-Embedding-0.6B baseline (GPU profiles) is
`dense_qwen3: {class: dense, model: Qwen/Qwen3-Embedding-0.6B, pooling: last, query_instruction: "Instruct: Given a
question, retrieve passages that answer it\\nQuery: "}`."""

from lmem.baselines import TextEvidenceBaseline, top_k
from lmem.encoders import DenseEncoder


class Dense(TextEvidenceBaseline):
    name = "dense"

    def select(self, examples, k):
        encoder = DenseEncoder(self.spec.get("model") or self.config["retriever"]["model"], self.config["retriever"],
                               self.spec.get("pooling", "mean"), self.spec.get("query_instruction", ""))
        self.models = {"retriever": encoder.resolved.tag}
        queries = encoder.encode_queries([ex.question for ex in examples])
        evidence = encoder.encode([e.text for ex in examples for e in ex.pool])
        out, start = [], 0
        for q, ex in zip(queries, examples):
            scores = evidence[start:start + len(ex.pool)] @ q
            start += len(ex.pool)
            out.append([ex.pool[i] for i in top_k(scores.tolist(), k)])
        return out
