"""Dense top-k by cosine similarity, over each question's pool (`retrieval: pool`, the default) or the whole
benchmark's corpus (`retrieval: global`, FAISS flat; lmem/corpus.py). Default: all-MiniLM-L6-v2 (config: retriever),
mean pooling; the evidence embeddings come from the DAG's embed_corpus job, shared by every k. Options: `model`
(another encoder), `pooling` (mean | last), `query_instruction` (prefixed to each query); those encode in the run.
The paper's Qwen3-Embedding-0.6B baseline (GPU profiles) is
`dense_qwen3: {class: dense, model: Qwen/Qwen3-Embedding-0.6B, pooling: last, query_instruction: "Instruct: Given a
question, retrieve passages that answer it\\nQuery: "}`."""

from lmem.baselines import TextEvidenceBaseline
from lmem.corpus import dense_rank, retrieval_mode
from lmem.encoders import DenseEncoder


class Dense(TextEvidenceBaseline):
    name = "dense"
    options = {
        "model": {"type": ["string", "null"], "default": None, "description": "encoder (default: retriever.model)"},
        "pooling": {"enum": ["mean", "last"], "default": "mean"},
        "query_instruction": {"type": "string", "default": "", "description": "prefixed to each question"},
    }

    def select(self, examples, k):
        encoder = DenseEncoder(self.option("model") or self.config["retriever"]["model"], self.config["retriever"],
                               self.option("pooling"), self.option("query_instruction"))
        self.models = {"retriever": encoder.resolved.tag}
        return [ev for ev, _ in dense_rank(encoder, examples, k, retrieval_mode(self.spec, self.label),
                                           self.spec.get("embeddings"))]
