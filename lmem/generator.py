"""The generator runner: a frozen causal LM that answers batches of prompts by greedy decoding.

Prompts are sorted by length and batched with left padding, so padding is small and the same config always
forms the same batches (deterministic on CPU).
"""

from __future__ import annotations

import logging

import torch
from tqdm import tqdm

from lmem.models import ResolvedModel, resolve
from lmem.prompts import EncodedPrompt, LatentPrompt

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

    def _greedy(self, max_new_tokens: int | None = None, **inputs) -> torch.Tensor:
        return self.model.generate(**inputs, do_sample=False, num_beams=1,
                                   max_new_tokens=max_new_tokens or self.cfg["max_new_tokens"],
                                   pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self._stop_ids(),
                                   temperature=None, top_p=None, top_k=None)

    def _left_padded(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(map(len, seqs))
        ids = torch.full((len(seqs), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, seq in enumerate(seqs):
            ids[row, width - len(seq):] = torch.tensor(seq)
            mask[row, width - len(seq):] = 1
        return ids, mask

    @torch.inference_mode()
    def generate_ids(self, prompts: list[EncodedPrompt], desc: str = "generate", max_new_tokens: int | None = None,
                     topk_logprobs: int = 0) -> list[list[int]] | tuple[list[list[int]], list[tuple]]:
        """Greedy continuation ids for text prompts, in their order (batched by length, left padded). With
        `topk_logprobs` K > 0, also return per prompt the (indices, log-probs) of the K most likely tokens at
        each generated position, shape (n_new, K): the teacher's distributions for distillation."""
        order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i].input_ids), i))
        out: list[list[int]] = [[] for _ in prompts]
        tops: list[tuple] = [() for _ in prompts]
        bs = self.cfg["batch_size"]
        for start in tqdm(range(0, len(order), bs), desc=desc, unit="batch", mininterval=5):
            idx = order[start:start + bs]
            ids, mask = self._left_padded([prompts[i].input_ids for i in idx])
            width = ids.shape[1]
            if not topk_logprobs:
                gen = self._greedy(max_new_tokens, input_ids=ids, attention_mask=mask)
                for row, i in enumerate(idx):
                    out[i] = gen[row, width:].tolist()
                continue
            res = self._greedy(max_new_tokens, input_ids=ids, attention_mask=mask,
                               return_dict_in_generate=True, output_logits=True)
            logp = torch.stack(res.logits, dim=1).float().log_softmax(-1)  # (B, n_new, V)
            top = logp.topk(min(topk_logprobs, logp.shape[-1]), dim=-1)
            for row, i in enumerate(idx):
                seq = res.sequences[row, width:].tolist()
                n = len(seq)
                stops = self._stop_ids()
                for j, tok in enumerate(seq):  # keep through the first stop token, drop the padding after it
                    if tok in stops:
                        n = j + 1
                        break
                out[i] = seq[:n]
                tops[i] = (top.indices[row, :n].clone(), top.values[row, :n].clone())
        return (out, tops) if topk_logprobs else out

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    def generate(self, prompts: list[EncodedPrompt], desc: str = "generate") -> list[str]:
        """Greedy answers for text prompts, in their order."""
        return [self.decode(ids) for ids in self.generate_ids(prompts, desc)]

    def embed_latent_prompt(self, prompt: LatentPrompt, latents: torch.Tensor, skip: int = 0) -> torch.Tensor:
        """(len, hidden) input embeddings: the prompt's text segments with `latents` (n_slots * T, hidden) in
        its slots, without the first `skip` ids (a shared prefix held in a KV cache). Gradients flow to
        `latents` (used by distillation)."""
        emb = self.model.get_input_embeddings()
        T = prompt.positions_per_slot
        parts = []
        for i, seg in enumerate(prompt.segments):
            seg = seg[skip:] if i == 0 else seg
            if seg:
                parts.append(emb(torch.tensor(seg, device=emb.weight.device)))
            if i < prompt.n_slots:
                parts.append(latents[i * T:(i + 1) * T].to(emb.weight.dtype))
        return torch.cat(parts, dim=0)

    @torch.inference_mode()
    def generate_latent(self, prompts: list[LatentPrompt], latents: list[torch.Tensor],
                        desc: str = "generate") -> list[str]:
        """Greedy answers for latent prompts (input embeddings), batched by length with left padding."""
        order = sorted(range(len(prompts)), key=lambda i: (prompts[i].tokens_full, i))
        out: list[str] = [""] * len(prompts)
        bs = self.cfg["batch_size"]
        hidden = self.model.get_input_embeddings().weight
        for start in tqdm(range(0, len(order), bs), desc=desc, unit="batch", mininterval=5):
            idx = order[start:start + bs]
            seqs = [self.embed_latent_prompt(prompts[i], latents[i]) for i in idx]
            width = max(s.shape[0] for s in seqs)
            embeds = torch.zeros((len(idx), width, hidden.shape[1]), dtype=hidden.dtype)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, seq in enumerate(seqs):
                embeds[row, width - seq.shape[0]:] = seq
                mask[row, width - seq.shape[0]:] = 1
            gen = self._greedy(inputs_embeds=embeds, attention_mask=mask)
            for row, i in enumerate(idx):  # with inputs_embeds, generate returns only the new tokens
                out[i] = self.decode(gen[row].tolist())
        return out
