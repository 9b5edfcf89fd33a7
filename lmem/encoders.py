"""Dense sentence encoders: mean pooling + L2 normalisation (sentence-transformers' MiniLM), or last-token pooling
with an instruction before each query (Qwen3-Embedding, the paper's second dense baseline on GPU profiles)."""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm
from transformers import AutoModel, AutoTokenizer

from lmem.baselines import top_k
from lmem.models import resolve
from lmem.stage import device


class DenseEncoder:
    def __init__(self, spec: str, cfg: dict, pooling: str = "mean", query_instruction: str = "",
                 normalize: bool = True):
        if pooling not in ("mean", "last"):
            raise ValueError(f"dense pooling must be 'mean' or 'last', got {pooling!r}")
        self.pooling, self.query_instruction, self.normalize = pooling, query_instruction, normalize
        self.resolved = resolve(spec)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.resolved.path))
        self.model = AutoModel.from_pretrained(str(self.resolved.path)).eval().to(device())
        self.batch_size, self.max_length = cfg["batch_size"], cfg["max_length"]

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> torch.Tensor:
        """(len(texts), dim) unit vectors; batches are sorted by length for speed, output keeps input order."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = torch.zeros((len(texts), self.model.config.hidden_size))
        for s in tqdm(range(0, len(order), self.batch_size), desc="encode", unit="batch", mininterval=5,
                      disable=len(order) <= self.batch_size * 4):
            idx = order[s:s + self.batch_size]
            enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt").to(self.model.device)
            hidden = self.model(**enc).last_hidden_state
            if self.pooling == "last":  # the last real token, wherever the tokenizer pads
                last = enc["attention_mask"].cumsum(-1).argmax(-1)
                pooled = hidden[torch.arange(len(idx), device=hidden.device), last]
            else:
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            # unit vectors (cosine), or the raw pooled states (what xRAG's released projector was trained on)
            out[idx] = (torch.nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled).float().cpu()
        return out

    def rank_pools(self, examples, k: int, pool_embeddings: list[torch.Tensor] | None = None
                   ) -> list[tuple[list[int], torch.Tensor]]:
        """Per example: the indices of its k pool items most similar to its question (cosine, best first, ties to
        the earlier item) and the embeddings of its whole pool (`pool_embeddings`, e.g. from the embed stage, or
        encoded here)."""
        queries = self.encode_queries([ex.question for ex in examples])
        if pool_embeddings is None:
            evidence = self.encode([e.search_text for ex in examples for e in ex.pool])
            sizes = np.cumsum([0] + [len(ex.pool) for ex in examples])
            pool_embeddings = [evidence[a:b] for a, b in zip(sizes[:-1], sizes[1:])]
        out = []
        for q, ex, emb in zip(queries, examples, pool_embeddings):
            if self.normalize:  # unit vectors already
                cos = emb @ q
            else:
                cos = torch.nn.functional.normalize(emb, dim=-1) @ torch.nn.functional.normalize(q, dim=-1)
            out.append((top_k(cos.tolist(), k), emb))
        return out

    def encode_queries(self, questions: list[str]) -> torch.Tensor:
        """Queries with the model's instruction prefix (Qwen3-Embedding: "Instruct: ...\\nQuery: "), if any."""
        return self.encode([self.query_instruction + q for q in questions])
