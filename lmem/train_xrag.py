"""Stage `train_xrag`: the xRAG baseline's projector (Cheng et al., 2024, "xRAG: Extreme Context Compression for
Retrieval-augmented Generation with One Token"), trained here on the same data as Latent Memory.

A frozen dense retriever embeds each evidence item; a projector (Linear -> GELU -> Linear, then a LayerNorm at
the generator's embedding scale, as for Latent Memory) maps the embedding to ONE input embedding of the frozen
generator. Only the projector trains, in xRAG's two stages:
  1. paraphrase pretraining: from the token alone the generator must reproduce the evidence text
     (cross-entropy on the text; the instruction is `paraphrase_instruction` in the Latent Memory prompt);
  2. context-aware instruction tuning: one token per gold evidence item, the generator answers the question;
     loss = w_nll * cross-entropy on the gold answer + w_kl * KL(student || teacher) on the same positions,
     where the teacher is the frozen generator reading the evidence as text (top-k, computed once, cached).
Steps are pure functions of (seed, step), checkpoints hold the optimizer, so a killed run resumes exactly.

Usage: python -m lmem.train_xrag --spec JSON --out DIR   (DIR/projector.safetensors, projector.json, train_log.csv)
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import get_cosine_schedule_with_warmup

from lmem.encoders import DenseEncoder
from lmem.io import sha256_json
from lmem.losses import answer_cross_entropy, distillation_kl
from lmem.options import XragTrainConfig
from lmem.prompts import encode_latent, encode_with_evidence
from lmem.training import (LoopHooks, cached_teacher, frozen_generator, load_split, publish, resume, run_key,
                           run_steps, save_checkpoint, trainer_cli, training_items)
from lmem.xrag import XragProjector

log = logging.getLogger("lmem.train_xrag")


class XragTrainer(LoopHooks):
    def __init__(self, spec: dict, out_dir: str | Path, train_examples):
        self.spec, self.out = spec, Path(out_dir)
        self.cfg = XragTrainConfig.from_dict(dict(spec.get("train", {}), seed=spec.get("seed", 0)))
        self.prompt_cfg = spec["prompt"]
        self.out.mkdir(parents=True, exist_ok=True)
        self.generator = frozen_generator(spec["generator"])
        self.items = training_items(train_examples, self.cfg.max_positives)
        if not self.items:
            raise SystemExit("no training examples with gold evidence and answers; check the projector's train_data")
        self.key = run_key(spec, train_examples)
        retriever = spec["retriever"]
        encoder = DenseEncoder(retriever["model"], retriever)
        rng = random.Random(self.cfg.seed)
        texts: dict[str, None] = {}
        for it in self.items:
            for e in it.positives + rng.sample(it.negatives, min(self.cfg.paraphrase_negatives, len(it.negatives))):
                texts.setdefault(e.text)
        self.texts = list(texts)
        self.embedding = dict(zip(self.texts, encoder.encode(self.texts)))  # frozen: computed once
        emb = self.generator.model.get_input_embeddings().weight
        torch.manual_seed(self.cfg.seed)
        self.projector = XragProjector(encoder.model.config.hidden_size, emb.shape[1], float(emb.float().std()),
                                       retriever["model"]).to(emb.device)
        del encoder
        total = self.cfg.paraphrase_steps + self.cfg.steps
        self.params = list(self.projector.parameters())
        self.optimizer = torch.optim.AdamW(self.params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        self.scheduler = get_cosine_schedule_with_warmup(self.optimizer, self.cfg.warmup_steps, total)
        self.answers = [self.generator.answer_ids(it.example.answers[0], self.cfg.max_answer_tokens)
                        for it in self.items]
        self.teacher = self._teacher_cache()

    # -- the text teacher, teacher-forced on the gold answer -------------------------------------------------
    @torch.no_grad()
    def _teacher_cache(self) -> dict:
        key = sha256_json({"items": [(i.example.id, [e.id for e in i.positives]) for i in self.items],
                           "generator": self.generator.resolved.sha256, "prompt": self.prompt_cfg,
                           "answers": self.answers, "topk": self.cfg.distill_topk})

        def compute() -> dict:
            gen = self.generator
            prompts = []
            for it in self.items:
                pos = {e.id: i for i, e in enumerate(it.example.pool)}
                prompts.append(encode_with_evidence(gen.tokenizer, it.example.question, it.positives,
                                                    self.prompt_cfg, gen.max_input_tokens, pos))
            indices, logprobs = gen.forced_topk(prompts, self.answers, self.cfg.distill_topk,
                                                self.cfg.max_answer_tokens)
            return {"indices": indices, "logprobs": logprobs}

        return cached_teacher(self.out / "teacher.pt", key, compute)

    # -- one step --------------------------------------------------------------------------------------------
    def _vectors(self, texts: list[str]) -> torch.Tensor:
        emb = torch.stack([self.embedding[t] for t in texts]).to(self.generator.model.device)
        return self.projector(emb)

    def paraphrase_loss(self, rng: random.Random) -> dict[str, torch.Tensor]:
        gen, c = self.generator, self.cfg
        texts = [self.texts[rng.randrange(len(self.texts))] for _ in range(c.batch_size)]
        prompts = [encode_latent(gen.tokenizer, c.paraphrase_instruction, 1, self.prompt_cfg)] * len(texts)
        targets = [gen.answer_ids(t, c.max_paraphrase_tokens) for t in texts]
        vectors = self._vectors(texts)
        logits, _ = gen.forced_logits(prompts, [v[None] for v in vectors], targets, max(map(len, targets)))
        return {"paraphrase": answer_cross_entropy(logits, targets)}

    def instruction_loss(self, rng: random.Random) -> dict[str, torch.Tensor]:
        gen, c = self.generator, self.cfg
        idx = [rng.randrange(len(self.items)) for _ in range(c.batch_size)]
        prompts, vectors, targets = [], [], []
        for i in idx:
            it = self.items[i]
            pos = {e.id: p for p, e in enumerate(it.example.pool)}
            chosen = sorted(it.positives, key=lambda e: pos[e.id])
            prompts.append(encode_latent(gen.tokenizer, it.example.question, len(chosen), self.prompt_cfg))
            vectors.append(self._vectors([e.text for e in chosen]))
            targets.append(self.answers[i])
        N = c.max_answer_tokens
        logits, mask = gen.forced_logits(prompts, vectors, targets, N)
        out = {"nll": answer_cross_entropy(logits, targets)}
        if c.w_kl:
            ti = self.teacher["indices"][idx].long()
            tl = self.teacher["logprobs"][idx].float()
            # the cache holds answer positions first; forced_logits puts them last: shift each row
            ti2, tl2 = torch.zeros_like(ti), torch.full_like(tl, -1e4)
            for r, t in enumerate(targets):
                ti2[r, N - len(t):], tl2[r, N - len(t):] = ti[r, :len(t)], tl[r, :len(t)]
            out["kl"] = distillation_kl(logits, ti2.to(logits.device), tl2.to(logits.device), mask)
        return out

    # -- the loop's hooks (lmem.training.run_steps) ---------------------------------------------------------
    OUTPUTS = ("last", "final", "train_log.csv", "projector.safetensors", "projector.json")

    def save(self, name: str, state: dict | None) -> None:
        save_checkpoint(self.out, name, self.projector.save, self.optimizer, self.scheduler, state)

    def load_last(self, folder: Path) -> None:
        self.projector.load_state_dict(load_file(str(folder / "projector.safetensors")))

    def step(self, step: int) -> dict:
        c = self.cfg
        rng = random.Random(f"{c.seed}-{step}")
        stage = "paraphrase" if step < c.paraphrase_steps else "instruction"
        parts = self.paraphrase_loss(rng) if stage == "paraphrase" else self.instruction_loss(rng)
        weights = {"paraphrase": 1.0, "nll": c.w_nll, "kl": c.w_kl}
        loss = sum(weights[k] * v for k, v in parts.items())
        loss.backward()
        return {"stage": stage, **{k: v.item() for k, v in parts.items()}, "loss": loss.item()}

    def log_row(self, parts: dict) -> dict:
        return {"stage": parts["stage"], **{k: round(parts[k], 5) if k in parts else ""
                                            for k in ("paraphrase", "nll", "kl")}, "loss": round(parts["loss"], 5)}

    def train(self, stop_after: int | None = None) -> dict:
        total = self.cfg.paraphrase_steps + self.cfg.steps
        state = resume(self, total, self.OUTPUTS)
        self.projector.train()
        if run_steps(self, state, total, "train xRAG", stop_after):
            self.save("final", None)
            publish(self.out, "final", ("projector.safetensors", "projector.json"))  # the final projector at the top
        return state


def main(argv: list[str] | None = None) -> None:
    trainer_cli(__doc__, "train, train_data, generator, retriever, prompt, seed", argv,
                lambda spec, out: XragTrainer(spec, out, load_split(spec["train_data"], "train")), with_config=True)


if __name__ == "__main__":
    main()
