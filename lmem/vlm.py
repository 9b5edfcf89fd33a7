"""The VLM generator runner: a frozen image-text model (`AutoModelForImageTextToText` + `AutoProcessor`: LLaVA-1.5,
Gemma 3) answering from evidence items that are images (with their caption/title) or text facts, each placed in
the prompt in order as `Context i: <image> caption` / `Context i: fact`, through the processor's own chat template.

Visual tokens are counted from what the processor actually expands (LLaVA-1.5: 576 per image; Gemma 3: its soft
tokens plus the image's begin/end markers), never from a formula: `tokens_full` is the length of the processor's
input ids; `tokens_visual` the number of image-token ids in them; `tokens_context` runs from the first context
marker up to the question (text-only parts are tokenized by the processor's own tokenizer).

It is a `Generator`: the same `encode_evidence` / `generate` interface every baseline uses (raw evidence, images
from the benchmark's `images`), and Latent Memory's latent prompts go through its language model from input
embeddings, as for a text generator. Selected with `generator.kind: vlm` (the paper's multimodal profiles).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from lmem.generator import DTYPES, Generator
from lmem.images import ImageResolver
from lmem.io import InputError
from lmem.models import resolve
from lmem.prompts import LatentPrompt, fit_evidence
from lmem.records import Evidence
from lmem.stage import device


@dataclass
class VLMPrompt:
    text: str  # the chat-template text, image placeholders unexpanded
    images: list = field(default_factory=list)  # PIL images, in placeholder order
    tokens_full: int = 0
    tokens_no_system: int = 0
    tokens_context: int = 0
    tokens_visual: int = 0
    n_dropped: int = 0
    kept: list = field(default_factory=list)  # evidence in the prompt, in prompt order


class ChatTokenizer:
    """The processor's tokenizer, rendering chats with the processor's template (which takes structured content:
    [{"type": "text", ...}]), so latent prompts and raw-evidence prompts share one template."""

    def __init__(self, processor):
        self._tok, self._processor = processor.tokenizer, processor
        self.chat_template = processor.chat_template

    def apply_chat_template(self, messages: list[dict], **kwargs):
        structured = [{"role": m["role"], "content": [{"type": "text", "text": m["content"]}]
                       if isinstance(m["content"], str) else m["content"]} for m in messages]
        return self._processor.apply_chat_template(structured, **kwargs)

    def __call__(self, *args, **kwargs):
        return self._tok(*args, **kwargs)

    def __len__(self) -> int:
        return len(self._tok)

    def __getattr__(self, name):
        return getattr(self._tok, name)


def load_vlm(spec: str, prefer: str = "package", dtype: str = "float32"):
    """(resolved, processor, model in eval mode) of an image-text model."""
    resolved = resolve(spec, prefer=prefer)
    processor = AutoProcessor.from_pretrained(str(resolved.path))
    model = AutoModelForImageTextToText.from_pretrained(str(resolved.path), dtype=DTYPES[dtype])
    return resolved, processor, model.eval().to(device())


class VLMGenerator(Generator):
    def __init__(self, cfg: dict, processor=None, model=None, images: dict | None = None, resolved=None):
        """cfg: the generator section (model, prefer, dtype, max_new_tokens, batch_size). `processor` and `model`
        may be given directly (tests build small random ones); `images`: where the benchmark's images live."""
        self.cfg, self.vision = cfg, None
        if processor is None or model is None:
            resolved, processor, model = load_vlm(cfg["model"], cfg["prefer"], cfg["dtype"])  # schema defaults
        self.resolved = resolved
        self.processor, self.model = processor, model.eval().to(device())
        processor.tokenizer.padding_side = "left"
        if processor.tokenizer.pad_token_id is None:
            processor.tokenizer.pad_token = processor.tokenizer.eos_token
        self.tokenizer = ChatTokenizer(processor) if getattr(processor, "chat_template", None) else processor.tokenizer
        token = getattr(processor, "image_token", None) or "<image>"
        self.image_token_id = getattr(processor, "image_token_id", None) or self.tokenizer.convert_tokens_to_ids(token)
        text_cfg = getattr(model.config, "text_config", model.config)
        self.max_input_tokens = min(cfg.get("max_input_tokens", 4096),
                                    getattr(text_cfg, "max_position_embeddings", 10**9) - cfg.get("max_new_tokens", 32))
        self.resolve_image = ImageResolver(images)

    def encode_evidence(self, question: str, ranked: list, prompt_cfg: dict,
                        doc_position: dict[str, int] | None = None) -> VLMPrompt:
        """The prompt for raw evidence (best first, shown in document order when `doc_position` is given); the
        lowest-ranked items are dropped first while it is longer than max_input_tokens."""
        return fit_evidence(ranked, question, self.max_input_tokens,
                            lambda shown: self.encode(question, shown, prompt_cfg,
                                                      lambda e: self.resolve_image(e.image)), doc_position)

    # -- prompts ---------------------------------------------------------------------------------------------
    def _messages(self, question: str, evidence: list[Evidence], prompt_cfg: dict) -> list[dict]:
        content = []
        for i, e in enumerate(evidence, 1):
            content.append({"type": "text", "text": prompt_cfg["context_label"].format(i=i)})
            if e.kind == "image":
                content.append({"type": "image"})
                caption = " ".join(x for x in (e.title, e.text) if x)
                content.append({"type": "text", "text": f" {caption}\n" if caption else "\n"})
            else:
                content.append({"type": "text", "text": f"{e.text}\n"})
        content.append({"type": "text", "text": f"{prompt_cfg['question_label']}{question}"})
        return [{"role": "system", "content": [{"type": "text", "text": prompt_cfg["system"]}]},
                {"role": "user", "content": content}]

    def _n_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode(self, question: str, evidence: list[Evidence], prompt_cfg: dict, load_image) -> VLMPrompt:
        """The prompt for one question; `load_image(evidence)` returns the PIL image of an image item."""
        text = self.processor.apply_chat_template(self._messages(question, evidence, prompt_cfg),
                                                  add_generation_prompt=True, tokenize=False)
        images = [load_image(e) for e in evidence if e.kind == "image"]
        enc = self.processor(text=[text], images=images or None, return_tensors="pt")
        ids = enc["input_ids"][0]
        full = int(ids.shape[0])
        visual = int((ids == self.image_token_id).sum())
        marker = prompt_cfg["context_label"].format(i=1) if evidence else prompt_cfg["question_label"]
        start = text.rfind(marker)
        q_start = text.rfind(prompt_cfg["question_label"])
        if start < 0 or q_start < 0:
            raise RuntimeError("the processor's chat template altered the prompt; cannot locate the context")
        before = len(self.processor(text=[text[:start]], return_tensors="pt")["input_ids"][0])
        after = self._n_tokens(text[q_start:])
        return VLMPrompt(text, images, full, full - before, full - before - after if evidence else 0, visual)

    # -- generation ------------------------------------------------------------------------------------------
    def generate(self, prompts: list, desc: str = "generate") -> list[str]:
        """Greedy answers: raw-evidence prompts through the processor (images expanded by it), latent prompts
        through the language model from input embeddings."""
        if prompts and all(isinstance(p, LatentPrompt) for p in prompts):
            return super().generate(prompts, desc)
        if any(isinstance(p, LatentPrompt) for p in prompts):
            raise ValueError("a batch mixes latent and raw-evidence prompts")
        return self.generate_raw(prompts)

    def slot_vectors(self, prompt: LatentPrompt) -> torch.Tensor:
        raise InputError("a VLM generator puts images in its prompt through its processor; slot prompts carry latents")

    @torch.inference_mode()
    def generate_raw(self, prompts: list[VLMPrompt]) -> list[str]:
        out = []
        bs = self.cfg["batch_size"]
        for s in range(0, len(prompts), bs):
            batch = prompts[s:s + bs]
            images = [p.images for p in batch]
            enc = self.processor(text=[p.text for p in batch], images=images if any(images) else None,
                                 padding=True, return_tensors="pt").to(self.model.device)
            if "pixel_values" in enc:
                enc["pixel_values"] = enc["pixel_values"].to(self.model.dtype)
            gen = self.model.generate(**enc, do_sample=False, num_beams=1,
                                      max_new_tokens=self.cfg.get("max_new_tokens", 32),
                                      pad_token_id=self.tokenizer.pad_token_id, **self.stop_kwargs())
            width = enc["input_ids"].shape[1]
            out += [self.decode(g[width:].tolist()) for g in gen]
        return out

    @torch.inference_mode()
    def forced_topk(self, prompts: list, targets: list[list[int]], topk: int, n_max: int,
                    desc: str = "teacher") -> tuple[torch.Tensor, torch.Tensor]:
        """Generator.forced_topk for raw-evidence prompts (the teacher sees the real images): one prompt at a
        time through the processor, the target's ids appended."""
        if prompts and isinstance(prompts[0], LatentPrompt):
            return super().forced_topk(prompts, targets, topk, n_max, desc)
        indices = torch.zeros((len(prompts), n_max, topk), dtype=torch.int32)
        logprobs = torch.full((len(prompts), n_max, topk), -1e4, dtype=torch.float16)
        for r, (p, target) in enumerate(zip(prompts, targets)):
            enc = self.processor(text=[p.text], images=p.images or None, return_tensors="pt").to(self.model.device)
            target = target[:n_max]
            extra = torch.tensor([target[:-1]], dtype=enc["input_ids"].dtype, device=self.model.device)
            enc["input_ids"] = torch.cat([enc["input_ids"], extra], dim=1)
            enc["attention_mask"] = torch.ones_like(enc["input_ids"])
            if "token_type_ids" in enc:  # Gemma 3 marks image tokens; the answer tokens are text
                enc["token_type_ids"] = torch.cat([enc["token_type_ids"], torch.zeros_like(extra)], dim=1)
            if "pixel_values" in enc:
                enc["pixel_values"] = enc["pixel_values"].to(self.model.dtype)
            logits = self.model(**enc, logits_to_keep=len(target)).logits.float()[0]
            top = logits.log_softmax(-1).topk(min(topk, logits.shape[-1]), dim=-1)
            indices[r, :len(target), : top.indices.shape[-1]] = top.indices.int().cpu()
            logprobs[r, :len(target), : top.values.shape[-1]] = top.values.half().cpu()
        return indices, logprobs


class NativeVision:
    """A VLM's own vision tower and projector as the compressor's eyes (LLaVA-1.5, Gemma 3 compressors): images ->
    the visual tokens the VLM's language model reads (its `get_image_features`), in the same interface as the
    composed VLM's `lmem.vision.Vision`. The pooled target of the image regression is their mean."""

    def __init__(self, model, processor, images: dict | None = None):
        self.model, self.processor = model, processor
        self.resolve = ImageResolver(images)
        self.hidden = int(model.get_input_embeddings().weight.shape[1])
        self.feature_dim = self.hidden
        self._cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def tokens(self, evidence: list[Evidence]) -> torch.Tensor:
        missing = list(dict.fromkeys(e.image for e in evidence if e.image not in self._cache))
        for s in range(0, len(missing), 8):
            refs = missing[s:s + 8]
            pixels = self.processor.image_processor([self.resolve(r) for r in refs], return_tensors="pt")
            pv = pixels["pixel_values"].to(self.model.device, self.model.dtype)
            feats = self.model.get_image_features(pixel_values=pv).pooler_output
            feats = torch.stack(list(feats)) if isinstance(feats, (list, tuple)) else feats
            for r, f in zip(refs, feats):
                self._cache[r] = f.detach()
        if not evidence:
            return torch.zeros((0, 0, self.hidden))
        return torch.stack([self._cache[e.image] for e in evidence])

    @property
    def tokens_per_image(self) -> int:
        return int(next(iter(self._cache.values())).shape[0]) if self._cache else 0

    def features(self, evidence: list[Evidence]) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.tokens(evidence)
        return tokens, tokens.float().mean(1)


def make_generator(cfg: dict, vision=None, images: dict | None = None) -> Generator:
    """The generator a config section names: a text LM (with an optional composed-VLM `vision`), or, with
    `kind: vlm`, an image-text model."""
    if cfg.get("kind", "causal_lm") == "vlm":
        return VLMGenerator(cfg, images=images)
    return Generator(cfg, vision=vision)
