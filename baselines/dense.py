"""Dense top-k over each question's pool: cosine similarity of all-MiniLM-L6-v2 embeddings (config: retriever)."""

from lmem.baselines import TextEvidenceBaseline, top_k
from lmem.encoders import DenseEncoder


class Dense(TextEvidenceBaseline):
    name = "dense"

    def select(self, examples, k):
        encoder = DenseEncoder(self.spec.get("model") or self.config["retriever"]["model"], self.config["retriever"])
        queries = encoder.encode([ex.question for ex in examples])
        evidence = encoder.encode([e.text for ex in examples for e in ex.pool])
        out, start = [], 0
        for q, ex in zip(queries, examples):
            scores = evidence[start:start + len(ex.pool)] @ q
            start += len(ex.pool)
            out.append([ex.pool[i] for i in top_k(scores.tolist(), k)])
        return out
