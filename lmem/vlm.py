"""The VLM generator runner (issue 5, first part): a frozen image-text model (`AutoModelForImageTextToText` +
`AutoProcessor`: LLaVA-1.5, Gemma 3) answering from evidence items that are images (with their caption/title) or
text facts, each placed in the prompt in order as `Context i: <image> caption` / `Context i: fact`.

Visual tokens are counted from what the processor actually expands (LLaVA-1.5: 576 per image; Gemma 3: its soft
tokens plus the image's begin/end markers), never from a formula: `tokens_full` is the length of the processor's
input ids; `tokens_visual` the number of image-token ids in them; `tokens_context` runs from the first context
marker up to the question (text-only parts are tokenized by the processor's own tokenizer).

Not wired into the DAG yet: the multimodal baselines, compressor and `synth-vqa` are still to come.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from lmem.generator import DTYPES
from lmem.models import resolve
from lmem.records import Evidence


@dataclass
class VLMPrompt:
    text: str  # the chat-template text, image placeholders unexpanded
    images: list = field(default_factory=list)  # PIL images, in placeholder order
    tokens_full: int = 0
    tokens_no_system: int = 0
    tokens_context: int = 0
    tokens_visual: int = 0
    n_dropped: int = 0


class VLMGenerator:
    def __init__(self, cfg: dict, processor=None, model=None):
        """cfg: the generator section (model, prefer, dtype, max_new_tokens, batch_size). `processor` and `model`
        may be given directly (tests build small random ones)."""
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from lmem.stage import device

        self.cfg = cfg
        if processor is None or model is None:
            resolved = resolve(cfg["model"], prefer=cfg.get("prefer", "hub"))
            processor = processor or AutoProcessor.from_pretrained(str(resolved.path))
            model = model or AutoModelForImageTextToText.from_pretrained(str(resolved.path),
                                                                         dtype=DTYPES[cfg.get("dtype", "float32")])
        self.processor, self.model = processor, model.eval().to(device())
        self.tokenizer = processor.tokenizer
        self.tokenizer.padding_side = "left"
        token = getattr(processor, "image_token", None) or "<image>"
        self.image_token_id = getattr(processor, "image_token_id", None) or self.tokenizer.convert_tokens_to_ids(token)

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
    @torch.inference_mode()
    def generate(self, prompts: list[VLMPrompt]) -> list[str]:
        out = []
        bs = self.cfg.get("batch_size", 4)
        for s in range(0, len(prompts), bs):
            batch = prompts[s:s + bs]
            images = [p.images for p in batch]
            enc = self.processor(text=[p.text for p in batch], images=images if any(images) else None,
                                 padding=True, return_tensors="pt").to(self.model.device)
            if "pixel_values" in enc:
                enc["pixel_values"] = enc["pixel_values"].to(self.model.dtype)
            gen = self.model.generate(**enc, do_sample=False, num_beams=1,
                                      max_new_tokens=self.cfg.get("max_new_tokens", 32),
                                      pad_token_id=self.tokenizer.pad_token_id)
            width = enc["input_ids"].shape[1]
            out += [self.tokenizer.decode(g[width:], skip_special_tokens=True).strip() for g in gen]
        return out
