"""Dense sentence encoders (mean pooling + L2 normalisation, as sentence-transformers does for MiniLM)."""

from __future__ import annotations

import torch
from tqdm import tqdm

from lmem.models import resolve


class DenseEncoder:
    def __init__(self, spec: str, cfg: dict):
        from transformers import AutoModel, AutoTokenizer

        self.resolved = resolve(spec)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.resolved.path))
        self.model = AutoModel.from_pretrained(str(self.resolved.path)).eval()
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
                                 max_length=self.max_length, return_tensors="pt")
            hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[idx] = torch.nn.functional.normalize(pooled, dim=-1)
        return out
