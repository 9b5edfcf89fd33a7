"""The generator runner: a frozen causal LM that answers batches of prompts by greedy decoding.

Prompts are sorted by length and batched with left padding, so padding is small and the same config always
forms the same batches (deterministic on CPU).
"""

from __future__ import annotations

import logging

import torch
from tqdm import tqdm

from lmem.models import ResolvedModel, resolve
from lmem.prompts import EncodedPrompt

log = logging.getLogger(__name__)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_causal_lm(spec: str, prefer: str = "package", dtype: str = "float32"):
    """(resolved, tokenizer, model in eval mode) for a generator or compressor spec."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    resolved = resolve(spec, prefer=prefer)
    tokenizer = AutoTokenizer.from_pretrained(str(resolved.path))
    model = AutoModelForCausalLM.from_pretrained(str(resolved.path), dtype=DTYPES[dtype]).eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return resolved, tokenizer, model


class Generator:
    """Batched greedy generation from token ids (text prompts) with the config's decoding settings."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.resolved: ResolvedModel
        self.resolved, self.tokenizer, self.model = load_causal_lm(cfg["model"], cfg["prefer"], cfg["dtype"])
        self.max_input_tokens = min(cfg["max_input_tokens"],
                                    getattr(self.model.config, "max_position_embeddings", 10**9) - cfg["max_new_tokens"])

    @property
    def name(self) -> str:
        return self.cfg["model"]

    def _stop_ids(self) -> list[int]:
        ids = {self.tokenizer.eos_token_id, self.model.generation_config.eos_token_id}
        flat = set()
        for i in ids:
            flat.update(i if isinstance(i, list) else [i])
        return sorted(i for i in flat if i is not None)

    @torch.inference_mode()
    def generate(self, prompts: list[EncodedPrompt], desc: str = "generate") -> list[str]:
        """Greedy answers for `prompts`, in their order."""
        order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i].input_ids), i))
        out: list[str] = [""] * len(prompts)
        bs, pad = self.cfg["batch_size"], self.tokenizer.pad_token_id
        for start in tqdm(range(0, len(order), bs), desc=desc, unit="batch", mininterval=5):
            idx = order[start:start + bs]
            width = max(len(prompts[i].input_ids) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):  # left padding
                seq = prompts[i].input_ids
                ids[row, width - len(seq):] = torch.tensor(seq)
                mask[row, width - len(seq):] = 1
            gen = self.model.generate(input_ids=ids, attention_mask=mask, do_sample=False, num_beams=1,
                                      max_new_tokens=self.cfg["max_new_tokens"], pad_token_id=pad,
                                      eos_token_id=self._stop_ids(), temperature=None, top_p=None, top_k=None)
            for row, i in enumerate(idx):
                out[i] = self.tokenizer.decode(gen[row, width:], skip_special_tokens=True).strip()
        return out
