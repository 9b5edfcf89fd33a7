"""The generator runner: a frozen causal LM that answers batches of prompts by greedy decoding.

Prompts are sorted by length and batched with left padding, so padding is small and the same config always
forms the same batches (deterministic on CPU).

Decoding (`generator.prefix_cache`, default on): the prompt part every prompt of a call shares (chat template,
system prompt, worked example) runs once into a KV cache, and each batch decodes greedily after it, laid out as
[shared prefix][padding][rest of the prompt] with position ids that skip the padding, so every token sees exactly
the positions and context it has in the plain path (`prefix_cache: false`: transformers' `generate` on the whole
left-padded prompt), whose outputs tests compare against. `generator.stop` (strings; lm-evaluation-harness's
`until`): a row stops at the first generated token whose text holds a stop string, and its answer is cut there,
the same way for every method and both paths.
"""

from __future__ import annotations

import copy
import logging

import torch
from tqdm import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer

from lmem.io import InputError
from lmem.models import ResolvedModel, resolve
from lmem.prompts import EncodedPrompt, LatentPrompt, encode_with_evidence, encode_with_images
from lmem.stage import device

log = logging.getLogger(__name__)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_causal_lm(spec: str, prefer: str = "package", dtype: str = "float32"):
    """(resolved, tokenizer, model in eval mode) for a generator or compressor spec."""
    resolved = resolve(spec, prefer=prefer)
    tokenizer = AutoTokenizer.from_pretrained(str(resolved.path))
    model = AutoModelForCausalLM.from_pretrained(str(resolved.path), dtype=DTYPES[dtype]).eval().to(device())
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return resolved, tokenizer, model


class Generator:
    """Batched greedy generation from token ids (text prompts) with the config's decoding settings."""

    def __init__(self, cfg: dict, vision=None):
        """`vision`: a composed VLM's image module (lmem.vision.Vision) for prompts with image evidence."""
        self.cfg, self.vision = cfg, vision
        self.resolved: ResolvedModel
        self.resolved, self.tokenizer, self.model = load_causal_lm(cfg["model"], cfg["prefer"], cfg["dtype"])
        self.max_input_tokens = min(cfg["max_input_tokens"],
                                    getattr(self.model.config, "max_position_embeddings", 10**9)
                                    - cfg["max_new_tokens"])

    @property
    def name(self) -> str:
        return self.cfg["model"]

    # -- prompts with evidence ----------------------------------------------------------------------------------
    def encode_evidence(self, question: str, ranked: list, prompt_cfg: dict,
                        doc_position: dict[str, int] | None = None) -> EncodedPrompt | LatentPrompt:
        """The prompt for raw evidence (best first): text items as text; image items as the vision module's
        visual tokens plus their title and caption (a LatentPrompt whose slots `slot_vectors` fills)."""
        if not any(e.kind == "image" for e in ranked):
            return encode_with_evidence(self.tokenizer, question, ranked, prompt_cfg, self.max_input_tokens,
                                        doc_position)
        if self.vision is None:
            raise InputError(f"evidence {next(e.id for e in ranked if e.kind == 'image')} is an image, but the "
                             f"generator {self.name} reads text only: give the benchmark a `vision` (a composed VLM "
                             "under the config's vision section)")
        return encode_with_images(self.tokenizer, question, ranked, prompt_cfg, self.max_input_tokens,
                                  self.vision.tokens_per_image, doc_position)

    def slot_vectors(self, prompt: LatentPrompt) -> torch.Tensor:
        """(slot positions, hidden): the visual tokens of the images a raw-evidence prompt holds, in order."""
        images = [e for e in prompt.kept if e.kind == "image"]
        if not images:
            return torch.zeros((0, self.model.get_input_embeddings().weight.shape[1]))
        tokens = self.vision.tokens(images)
        return tokens.reshape(-1, tokens.shape[-1])

    def _stop_ids(self) -> list[int]:
        ids = {self.tokenizer.eos_token_id, self.model.generation_config.eos_token_id}
        flat = set()
        for i in ids:
            flat.update(i if isinstance(i, list) else [i])
        return sorted(i for i in flat if i is not None)

    @property
    def stop_strings(self) -> list[str]:
        return list(self.cfg.get("stop") or [])

    def cut(self, text: str) -> str:
        """`text` up to its first stop string (all of it without one)."""
        ends = [i for i in (text.find(s) for s in self.stop_strings) if i >= 0]
        return text[: min(ends)] if ends else text

    def stop_kwargs(self) -> dict:
        """transformers' `generate` arguments for the stop strings (none without them)."""
        return {"stop_strings": self.stop_strings, "tokenizer": self.tokenizer} if self.stop_strings else {}

    def _greedy(self, max_new_tokens: int | None = None, **inputs) -> torch.Tensor:
        """The plain path: transformers' greedy `generate` on whole left-padded prompts."""
        return self.model.generate(**inputs, do_sample=False, num_beams=1,
                                   max_new_tokens=max_new_tokens or self.cfg["max_new_tokens"],
                                   pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self._stop_ids(),
                                   temperature=None, top_p=None, top_k=None, **self.stop_kwargs())

    @staticmethod
    def shared_prefix(seqs: list[list[int]]) -> int:
        """The length of the ids every sequence starts with, leaving each at least one id of its own."""
        n = min(map(len, seqs)) - 1
        first = seqs[0]
        for seq in seqs[1:]:
            i = 0
            while i < n and seq[i] == first[i]:
                i += 1
            n = i
        return max(n, 0)

    def _after_prefix(self, embeds: torch.Tensor, mask: torch.Tensor, prefix: list[int], **kw):
        """One forward pass of left-padded prompt suffixes (B x L x H input embeddings) after the cached `prefix`
        ids, laid out as [prefix][padding][suffix], positions skipping the padding: (output, attention mask,
        position ids of the suffix)."""
        B, P, dev = embeds.shape[0], len(prefix), embeds.device
        cache = None
        if P:
            cache = copy.deepcopy(self.prefix_cache(prefix))
            cache.batch_repeat_interleave(B)
        attn = torch.cat([torch.ones((B, P), dtype=mask.dtype, device=dev), mask], dim=1)
        position = P + (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(inputs_embeds=embeds, attention_mask=attn, position_ids=position, cache=cache, **kw)
        return out, attn, position

    def _decode_after_prefix(self, embeds: torch.Tensor, mask: torch.Tensor, prefix: list[int],
                             max_new_tokens: int | None = None, topk: int = 0):
        """Greedy decoding of a left-padded batch of prompt suffixes (input embeddings, B x L x H) after the
        cached `prefix` ids: (new ids (B, n) with padding after a row's stop, top-k (indices, log-probs) per step
        or None). A row stops at an end token or at the first token that completes a stop string."""
        B, dev = embeds.shape[0], embeds.device
        out, attn, position = self._after_prefix(embeds, mask, prefix, logits_to_keep=1, use_cache=True)
        stops = torch.tensor(self._stop_ids(), device=dev)
        pad = self.tokenizer.pad_token_id
        done = torch.zeros(B, dtype=torch.bool, device=dev)
        new, tops = [], []
        rows: list[list[int]] = [[] for _ in range(B)]
        for step in range(max_new_tokens or self.cfg["max_new_tokens"]):
            logits = out.logits[:, -1].float()
            token = logits.argmax(-1)
            if topk:
                t = logits.log_softmax(-1).topk(min(topk, logits.shape[-1]), dim=-1)
                tops.append((t.indices, t.values))
            token = torch.where(done, torch.full_like(token, pad), token)
            new.append(token)
            done |= torch.isin(token, stops)
            if self.stop_strings:
                for r in range(B):
                    if not done[r]:
                        rows[r].append(int(token[r]))
                        text = self.tokenizer.decode(rows[r])
                        done[r] = any(s in text for s in self.stop_strings)
            if bool(done.all()):
                break
            attn = torch.cat([attn, torch.ones((B, 1), dtype=attn.dtype, device=dev)], dim=1)
            position = position[:, -1:] + 1
            out = self.model(input_ids=token[:, None], attention_mask=attn, position_ids=position,
                             cache=out.cache, use_cache=True)
        ids = torch.stack(new, dim=1)
        if not topk:
            return ids, None
        return ids, (torch.stack([i for i, _ in tops], 1), torch.stack([v for _, v in tops], 1))

    def _left_padded(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(map(len, seqs))
        ids = torch.full((len(seqs), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, seq in enumerate(seqs):
            ids[row, width - len(seq):] = torch.tensor(seq)
            mask[row, width - len(seq):] = 1
        return ids.to(self.model.device), mask.to(self.model.device)

    def _left_padded_embeds(self, seqs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, width, hidden) left-padded input embeddings and their attention mask."""
        width = max(s.shape[0] for s in seqs)
        embeds = torch.zeros((len(seqs), width, seqs[0].shape[1]), dtype=seqs[0].dtype, device=seqs[0].device)
        mask = torch.zeros((len(seqs), width), dtype=torch.long, device=seqs[0].device)
        for row, seq in enumerate(seqs):
            embeds[row, width - seq.shape[0]:] = seq
            mask[row, width - seq.shape[0]:] = 1
        return embeds, mask

    def _left_padded_id_embeds(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """`_left_padded_embeds` of the input embeddings of id sequences (the prefix-cached path's suffixes)."""
        emb = self.model.get_input_embeddings()
        return self._left_padded_embeds([emb(torch.tensor(seq, device=emb.weight.device)) for seq in seqs])

    @property
    def cached(self) -> bool:
        return bool(self.cfg.get("prefix_cache", True))

    def _through_stop(self, seq: list[int]) -> int:
        """How many of a row's new ids to keep: through its first end token (the padding after it dropped)."""
        stops = self._stop_ids()
        return next((j + 1 for j, tok in enumerate(seq) if tok in stops), len(seq))

    @torch.inference_mode()
    def generate_ids(self, prompts: list[EncodedPrompt], desc: str = "generate", max_new_tokens: int | None = None,
                     topk_logprobs: int = 0) -> list[list[int]] | tuple[list[list[int]], list[tuple]]:
        """Greedy continuation ids for text prompts, in their order (batched by length, left padded), each through
        its end token. With `topk_logprobs` K > 0, also return per prompt the (indices, log-probs) of the K most
        likely tokens at each generated position, shape (n_new, K): the teacher's distributions for distillation."""
        order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i].input_ids), i))
        out: list[list[int]] = [[] for _ in prompts]
        tops: list[tuple] = [() for _ in prompts]
        bs = self.cfg["batch_size"]
        P = self.shared_prefix([p.input_ids for p in prompts]) if self.cached and prompts else 0
        for start in tqdm(range(0, len(order), bs), desc=desc, unit="batch", mininterval=5):
            idx = order[start:start + bs]
            if self.cached:
                embeds, mask = self._left_padded_id_embeds([prompts[i].input_ids[P:] for i in idx])
                gen, top = self._decode_after_prefix(embeds, mask, prompts[idx[0]].input_ids[:P], max_new_tokens,
                                                     topk_logprobs)
            else:
                ids, mask = self._left_padded([prompts[i].input_ids for i in idx])
                res = self._greedy(max_new_tokens, input_ids=ids, attention_mask=mask, return_dict_in_generate=True,
                                   output_logits=bool(topk_logprobs))
                gen, top = res.sequences[:, ids.shape[1]:], None
                if topk_logprobs:
                    logp = torch.stack(res.logits, dim=1).float().log_softmax(-1)  # (B, n_new, V)
                    t = logp.topk(min(topk_logprobs, logp.shape[-1]), dim=-1)
                    top = (t.indices, t.values)
            for row, i in enumerate(idx):
                seq = gen[row].tolist()
                n = self._through_stop(seq)
                out[i] = seq[:n]
                if topk_logprobs:
                    tops[i] = (top[0][row, :n].cpu(), top[1][row, :n].cpu())
        return (out, tops) if topk_logprobs else out

    @torch.inference_mode()
    def forced_topk(self, prompts: list[EncodedPrompt], targets: list[list[int]], topk: int, n_max: int,
                    desc: str = "teacher") -> tuple[torch.Tensor, torch.Tensor]:
        """The top-k log-probabilities of the distributions that predict each target token after its text prompt
        (teacher forcing): (indices int32, log-probs fp16), each (len(prompts), n_max, k), target positions first,
        -1e4 past a target's end."""
        indices = torch.zeros((len(prompts), n_max, topk), dtype=torch.int32)
        logprobs = torch.full((len(prompts), n_max, topk), -1e4, dtype=torch.float16)
        bs = self.cfg["batch_size"]
        text = prompts and not any(isinstance(p, LatentPrompt) for p in prompts)
        P = self.shared_prefix([p.input_ids for p in prompts]) if self.cached and text else 0
        order = sorted(range(len(prompts)), key=lambda i: (prompts[i].tokens_full, i))  # little padding
        for s in tqdm(range(0, len(prompts), bs), desc=desc, unit="batch", mininterval=5):
            rows = order[s:s + bs]
            if isinstance(prompts[rows[0]], LatentPrompt):  # raw evidence with images: from input embeddings
                emb = self.model.get_input_embeddings()
                seqs = [torch.cat([self.embed_latent_prompt(prompts[r], self.slot_vectors(prompts[r])),
                                   emb(torch.tensor(targets[r][:n_max][:-1], dtype=torch.long,
                                                    device=emb.weight.device))]) for r in rows]
                embeds, mask = self._left_padded_embeds(seqs)
                logits = self.model(inputs_embeds=embeds, attention_mask=mask, logits_to_keep=n_max).logits.float()
            elif self.cached:
                embeds, mask = self._left_padded_id_embeds([prompts[r].input_ids[P:] + targets[r][:n_max][:-1]
                                                            for r in rows])
                logits = self._after_prefix(embeds, mask, prompts[0].input_ids[:P],
                                            logits_to_keep=n_max)[0].logits.float()
            else:
                ids, mask = self._left_padded([prompts[r].input_ids + targets[r][:n_max][:-1] for r in rows])
                logits = self.model(input_ids=ids, attention_mask=mask, logits_to_keep=n_max).logits.float()
            top = logits.log_softmax(-1).topk(min(topk, logits.shape[-1]), dim=-1)
            for j, r in enumerate(rows):
                n = len(targets[r][:n_max])
                indices[r, :n, : top.indices.shape[-1]] = top.indices[j, n_max - n:].int().cpu()
                logprobs[r, :n, : top.values.shape[-1]] = top.values[j, n_max - n:].half().cpu()
        return indices, logprobs

    def answer_ids(self, text: str, max_tokens: int) -> list[int]:
        """A reference answer as the generator would write it: its tokens, then the end of the turn."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"][: max_tokens - 1]
        end = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else self._stop_ids()[0]
        return ids + [end]

    def decode(self, ids: list[int]) -> str:
        text = self.cut(self.tokenizer.decode(ids, skip_special_tokens=True)).strip()
        if not getattr(self.tokenizer, "chat_template", None):  # a base model: its answer is the first line
            text = text.split("\n", 1)[0].strip()
        return text

    def generate(self, prompts: list[EncodedPrompt | LatentPrompt], desc: str = "generate") -> list[str]:
        """Greedy answers for the prompts of `encode_evidence` (text, or with images), in their order."""
        if prompts and all(isinstance(p, LatentPrompt) for p in prompts):
            with torch.no_grad():
                vectors = [self.slot_vectors(p) for p in prompts]
            return self.generate_latent(prompts, vectors, desc=desc)
        if any(isinstance(p, LatentPrompt) for p in prompts):
            text = [i for i, p in enumerate(prompts) if not isinstance(p, LatentPrompt)]
            slots = [i for i, p in enumerate(prompts) if isinstance(p, LatentPrompt)]
            out = [""] * len(prompts)
            for group in (text, slots):
                for i, a in zip(group, self.generate([prompts[i] for i in group], desc)):
                    out[i] = a
            return out
        return [self.decode(ids) for ids in self.generate_ids(prompts, desc)]

    def embed_latent_prompt(self, prompt: LatentPrompt, latents: torch.Tensor, skip: int = 0) -> torch.Tensor:
        """(len, hidden) input embeddings: the prompt's text segments with `latents` (sum of slot sizes, hidden) in
        its slots, without the first `skip` ids (a shared prefix held in a KV cache). Gradients flow to
        `latents` (used by distillation)."""
        emb = self.model.get_input_embeddings()
        if latents.shape[0] != sum(prompt.slot_sizes):
            raise ValueError(f"{latents.shape[0]} slot vectors for a prompt with {sum(prompt.slot_sizes)} slot "
                             "positions")
        parts, at = [], 0
        for i, seg in enumerate(prompt.segments):
            seg = seg[skip:] if i == 0 else seg
            if seg:
                parts.append(emb(torch.tensor(seg, device=emb.weight.device)))
            if i < prompt.n_slots:
                n = prompt.slot_sizes[i]
                parts.append(latents[at:at + n].to(emb.weight.device, emb.weight.dtype))
                at += n
        return torch.cat(parts, dim=0)

    def prefix_cache(self, prefix: list[int]):
        """The KV cache of `prefix` ids (batch 1), kept for the next call with the same prefix: the generator is
        frozen, so a prefix every prompt shares runs once (in training, only the per-question rest needs
        gradients)."""
        if getattr(self, "_prefix", None) is None or self._prefix[0] != prefix:
            # never inference tensors (a call under inference_mode), which training could not use
            with torch.inference_mode(False), torch.no_grad():
                ids = torch.tensor([prefix], device=self.model.device)
                self._prefix = (list(prefix), self.model(input_ids=ids, use_cache=True).cache)
        return self._prefix[1]

    def forced_logits(self, prompts: list[LatentPrompt], latents: list[torch.Tensor], targets: list[list[int]],
                      n_last: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced logits of `targets` after latent prompts, with gradients to the latents: (logits over
        the last `n_last` positions (B, n_last, V), mask (B, n_last) of the positions that predict a target
        token). Target i fills the last len(targets[i]) <= n_last positions; the shared prefix comes from the
        KV cache (every prompt must share it)."""
        emb = self.model.get_input_embeddings()
        dev = emb.weight.device
        skip = prompts[0].tokens_full - prompts[0].tokens_no_system  # the template, system prompt, worked example
        seqs = []
        for prompt, lat, target in zip(prompts, latents, targets):
            body = self.embed_latent_prompt(prompt, lat, skip=skip)
            if len(target) > 1:
                body = torch.cat([body, emb(torch.tensor(target[:-1], device=dev))], 0)
            seqs.append(body)
        embeds, attn = self._left_padded_embeds(seqs)  # left padding: the target positions end every row
        logits = self._after_prefix(embeds, attn, prompts[0].segments[0][:skip], logits_to_keep=n_last)[0].logits
        mask = torch.zeros((len(seqs), n_last), device=dev)
        for r, target in enumerate(targets):
            mask[r, n_last - len(target):] = 1
        return logits, mask

    @torch.inference_mode()
    def generate_latent(self, prompts: list[LatentPrompt], latents: list[torch.Tensor],
                        desc: str = "generate") -> list[str]:
        """Greedy answers for latent prompts (input embeddings), batched by length with left padding."""
        order = sorted(range(len(prompts)), key=lambda i: (prompts[i].tokens_full, i))
        out: list[str] = [""] * len(prompts)
        bs = self.cfg["batch_size"]
        P = self.shared_prefix([p.segments[0] for p in prompts]) if self.cached and prompts else 0
        for start in tqdm(range(0, len(order), bs), desc=desc, unit="batch", mininterval=5):
            idx = order[start:start + bs]
            embeds, mask = self._left_padded_embeds([self.embed_latent_prompt(prompts[i], latents[i], skip=P)
                                                     for i in idx])
            if self.cached:
                gen, _ = self._decode_after_prefix(embeds, mask, prompts[idx[0]].segments[0][:P])
            else:  # with inputs_embeds, generate returns only the new tokens
                gen = self._greedy(inputs_embeds=embeds, attention_mask=mask)
            for row, i in enumerate(idx):
                out[i] = self.decode(gen[row].tolist())
        return out
