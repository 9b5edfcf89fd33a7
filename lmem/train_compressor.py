"""Stage `train_compressor`: the Latent Memory trainer (docs/method.md section 3).

L = w_recon * L_recon + w_contrast * L_contrast + w_distill * L_distill, AdamW with a cosine schedule, gradient
accumulation, bf16 autocast where the hardware supports it, periodic validation (latent retrieval recall@k and
latent-memory QA F1 on held-out questions), the best checkpoint kept by validation F1 (ties broken by recall, then
the later step).

Every step is a pure function of (seed, step): the batch comes from a seeded per-epoch permutation, negatives from a
per-step RNG, dropout from a per-step torch seed. So a run killed at any point and restarted from its last
checkpoint (trainable weights, optimizer and scheduler state, step) ends with the same weights as an uninterrupted
one on CPU. The frozen teacher's answers and top-k log-probabilities are computed once per training example and
cached (teacher.pt).

Training starts from the base model with freshly measured latent statistics, or, with `init_dir` in the spec (the
compressor entry's `init_from`), from another compressor's best checkpoint: a second stage on other data.

Usage: python -m lmem.train_compressor --spec JSON --out DIR   (DIR/best, DIR/init, DIR/last, DIR/train_log.csv)
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import torch
from transformers import get_cosine_schedule_with_warmup

from lmem.compressor import CompressorConfig, build_compressor
from lmem.io import append_csv, sha256_file, sha256_json
from lmem.latent_memory import answer, compress_evidence, pool_retriever
from lmem.losses import answer_cross_entropy, distillation_kl, multi_positive_infonce
from lmem.metrics.qa import mean_f1
from lmem.options import TrainConfig
from lmem.prompts import EncodedPrompt, LatentPrompt, encode_latent
from lmem.records import Evidence, Example
from lmem.training import (LoopHooks, TrainItem, cached_teacher, frozen_generator, load_split, resume, run_key,
                           run_steps, save_checkpoint, trainer_cli, training_items)
from lmem.vlm import VLMGenerator

log = logging.getLogger("lmem.train_compressor")


def false_negatives(items: list[TrainItem], evidence: list[Evidence], positive: torch.Tensor) -> torch.Tensor:
    """(Q, C) mask of the candidates that must not be negatives of a query: not its own positive slots, but
    evidence whose text equals one of its positives' texts (a sentence gold for two questions of the batch, or the
    same item drawn twice at an epoch's wrap)."""
    out = torch.zeros_like(positive)
    for b, it in enumerate(items):
        texts = {e.text for e in it.positives}
        for c, e in enumerate(evidence):
            if e.text in texts and not positive[b, c]:
                out[b, c] = True
    return out


def better(metrics: dict[str, float], best: dict | None) -> bool:
    """Is this validation better than the best so far? By F1, ties broken by recall, then the later step wins
    (a tie at F1 0.0 early in training says nothing; the later step has trained longer)."""
    if best is None:
        return True
    key = (round(metrics["val_f1"], 6), round(metrics["val_recall"], 6))
    return key >= (round(best["val_f1"], 6), round(best["val_recall"], 6))


def autocast_context(mode: str):
    use = mode == "bf16" or (mode == "auto" and torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.autocast(device, dtype=torch.bfloat16, enabled=use)


class Trainer(LoopHooks):
    def __init__(self, spec: dict, out_dir: str | Path, train_examples: list[Example], val_examples: list[Example]):
        self.spec, self.out = spec, Path(out_dir)
        self.tcfg = TrainConfig.from_dict(dict(spec.get("train", {}), seed=spec.get("seed", 0)))
        self.prompt_cfg = dict(spec["prompt"], **({"latent_layout": self.tcfg.latent_layout}
                                                   if self.tcfg.latent_layout else {}))
        self.out.mkdir(parents=True, exist_ok=True)
        images = spec["compressor"].get("images")
        self.generator = frozen_generator(spec["generator"], images)
        torch.manual_seed(self.tcfg.seed)
        self.compressor = build_compressor(CompressorConfig.from_dict(spec["compressor"]),
                                           self.generator.model.get_input_embeddings().weight.detach(),
                                           images)
        if not isinstance(self.generator, VLMGenerator):
            # the teacher sees images as the composed VLM does (the same frozen vision module)
            self.generator.vision = self.compressor.vision
        if self.tcfg.w_image and self.compressor.vision is None:
            raise ValueError("w_image (image regression) needs a compressor with a vision module (config: vision)")
        self.items = training_items(train_examples, self.tcfg.max_positives)
        if not self.items:
            raise SystemExit("no training examples with gold evidence and answers; check the compressor's train_data")
        self.val = [ex for ex in val_examples if ex.pool][: self.tcfg.val_questions]
        self.params = [p for p in self.compressor.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=self.tcfg.lr, weight_decay=self.tcfg.weight_decay)
        self.scheduler = get_cosine_schedule_with_warmup(self.optimizer, self.tcfg.warmup_steps, self.tcfg.steps)
        self.teacher = self._teacher_cache()
        self.key = run_key(spec, train_examples + val_examples)
        self._image_features_in_order(None)

    # -- teacher ---------------------------------------------------------------------------------------------
    def _teacher_prompt(self, item: TrainItem):
        pos = {e.id: i for i, e in enumerate(item.example.pool)}
        return self.generator.encode_evidence(item.example.question, item.positives, self.prompt_cfg, pos)

    def _teacher_cache(self) -> dict:
        """The frozen generator's top-k log-probs at N answer positions per item, computed once: on its own greedy
        answer (`distill_target: teacher_answer`) or teacher-forced on the reference answer (`gold_answer`)."""
        t = self.tcfg  # its values are checked where the options are read (lmem.options)
        key = sha256_json({"items": [(i.example.id, [e.id for e in i.positives]) for i in self.items],
                           "generator": self.generator.resolved.sha256, "prompt": self.prompt_cfg,
                           "N": t.distill_tokens, "topk": t.distill_topk, "target": t.distill_target,
                           **({"vision": sha256_file(Path(self.compressor.cfg.vision_dir) / "projector.safetensors")}
                              if self.compressor.cfg.vision_dir else {})})

        def compute() -> dict:
            N, K = t.distill_tokens, t.distill_topk
            prompts = [self._teacher_prompt(it) for it in self.items]
            if t.distill_target == "gold_answer":
                answers = [self.generator.answer_ids(it.example.answers[0], N) for it in self.items]
                indices, logprobs = self.generator.forced_topk(prompts, answers, K, N)
            elif not all(isinstance(p, EncodedPrompt) for p in prompts):
                # prompts with images: the teacher's greedy answer (re-tokenized), then teacher-forced on it
                texts = self.generator.generate(prompts, desc="teacher")
                answers = [self.generator.answer_ids(a, N) for a in texts]
                indices, logprobs = self.generator.forced_topk(prompts, answers, K, N)
            else:
                # greedy generation's logits at each step are the teacher-forced distributions on its own answer
                answers, tops = self.generator.generate_ids(prompts, desc="teacher", max_new_tokens=N,
                                                            topk_logprobs=K)
                K = tops[0][0].shape[-1]
                indices = torch.zeros((len(self.items), N, K), dtype=torch.int32)
                logprobs = torch.full((len(self.items), N, K), -1e4, dtype=torch.float16)
                for i, (ind, lp) in enumerate(tops):
                    indices[i, : len(ind)] = ind.int()
                    logprobs[i, : len(lp)] = lp.half()
            return {"answers": answers, "indices": indices, "logprobs": logprobs}

        return cached_teacher(self.out / "teacher.pt", key, compute)

    # -- one step --------------------------------------------------------------------------------------------
    def batch(self, micro_index: int) -> list[int]:
        n, bs = len(self.items), self.tcfg.batch_size
        out = []
        for j in range(micro_index * bs, (micro_index + 1) * bs):
            epoch, pos = divmod(j, n)
            perm = list(range(n))
            random.Random(self.tcfg.seed * 1_000_003 + epoch).shuffle(perm)
            out.append(perm[pos])
        return out

    def _step_evidence(self, idx: list[int], rng: random.Random):
        """A micro-batch's items, their sampled hard negatives, and its evidence (positives then negatives per
        item) with each item's slots in it."""
        items = [self.items[i] for i in idx]
        negs = [rng.sample(it.negatives, min(self.tcfg.hard_negatives, len(it.negatives))) for it in items]
        evidence: list[Evidence] = []
        slot: dict[tuple[int, str], int] = {}
        for b, (it, ng) in enumerate(zip(items, negs)):
            for e in it.positives + ng:
                slot[(b, e.id)] = len(evidence)
                evidence.append(e)
        return items, negs, evidence, slot

    def losses(self, idx: list[int], rng: random.Random, step: int = 0) -> dict[str, torch.Tensor]:
        c, t = self.compressor, self.tcfg
        items, negs, evidence, slot = self._step_evidence(idx, rng)
        ev_ids, prefixes = c.evidence_inputs(evidence)
        latents = c.compress(ev_ids, prefixes)  # (E, T, H)
        out = {}
        if t.w_contrast or t.distill_memory:
            queries = c.embed_query(c.tokenize([it.example.question for it in items], c.cfg.max_query_tokens))
            cands = c.retrieval_embedding(latents)
        if t.w_contrast:
            positive = torch.zeros((len(items), len(evidence)), dtype=torch.bool)
            allowed = torch.zeros_like(positive)
            for b, (it, ng) in enumerate(zip(items, negs)):
                for e in it.positives:
                    positive[b, slot[(b, e.id)]] = True
                for e in ng:
                    allowed[b, slot[(b, e.id)]] = True
            allowed |= positive.any(0, keepdim=True)  # every positive in the batch is a candidate for every query
            allowed &= ~false_negatives(items, evidence, positive)
            out["contrast"] = multi_positive_infonce(queries, cands, positive, allowed, t.temperature)
        if t.w_recon:
            rows = [slot[(b, e.id)] for b, it in enumerate(items) for e in it.positives]
            if t.recon_negatives:
                rows = list(range(len(evidence)))
            out["recon"] = c.reconstruction_loss(latents[rows], [ev_ids[r] for r in rows])
        if t.w_image:
            rows = [r for r, e in enumerate(evidence) if e.kind == "image"]
            if rows:
                _, pooled = c.vision.features([evidence[r] for r in rows])
                out["image"] = c.image_regression_loss(latents[rows], pooled)
        if t.w_distill or t.w_answer:
            warm = step < t.reading_warmup
            if t.distill_memory:
                memories = self._memories(items, evidence, slot, (queries @ cands.T).detach(), warm)
            else:
                memories = self._pool_order_memories(items, [[] for _ in negs] if warm else negs, slot, rng)
            reading = [b for b, it in enumerate(items)
                       if t.distill_types is None or it.example.metadata.get("type") in t.distill_types]
            if reading:
                kl, nll = self._distill([idx[b] for b in reading], [items[b] for b in reading],
                                        [memories[b] for b in reading], latents)
            else:  # no question of distill_types in this micro-batch: zero, in the graph, so the row keeps its columns
                kl = nll = latents.sum() * 0.0
            if t.w_distill:
                out["distill"] = kl
            if t.w_answer:
                out["answer"] = nll
        return out

    def _pool_order_memories(self, items, negs, slot, rng) -> list[list[int]]:
        """The paper's student memory: each item's gold latents in the teacher's (pool) order, with
        distill_negatives of its hard negatives inserted at random places (rows of the step's evidence)."""
        out = []
        for b, it in enumerate(items):
            pos = {e.id: p for p, e in enumerate(it.example.pool)}
            chosen = sorted(it.positives, key=lambda e: pos[e.id])  # the teacher's order
            for e in negs[b][: self.tcfg.distill_negatives]:  # student-only negative latents, placed at random
                chosen.insert(rng.randrange(len(chosen) + 1), e)
            out.append([slot[(b, e.id)] for e in chosen])
        return out

    def _memories(self, items, evidence, slot, scores, gold_only) -> list[list[int]]:
        """distill_memory: each item's gold latents and the step's highest-scoring other latents (one per distinct
        text, none whose text is one of its gold texts) up to distill_memory, in descending order of the query's
        score, as inference orders its top-k. gold_only (the reading warm-up): the gold latents alone, in that
        order. Rows of the step's evidence."""
        out = []
        for b, it in enumerate(items):
            order = sorted(range(len(evidence)), key=lambda r: -float(scores[b, r]))
            rows = {slot[(b, e.id)] for e in it.positives}
            seen = {e.text for e in it.positives}
            for r in [] if gold_only else order:
                if len(rows) >= self.tcfg.distill_memory:
                    break
                if evidence[r].text not in seen:
                    seen.add(evidence[r].text)
                    rows.add(r)
            out.append([r for r in order if r in rows])
        return out

    def _distill(self, idx, items, memories, latents):
        """(KL to the teacher, cross-entropy on the reference answer or None) over the N answer positions; each
        item's student reads the latents of its memory (rows of `latents`), in that order."""
        t, T = self.tcfg, self.compressor.cfg.num_mem_tokens
        prompts, vectors, answers = [], [], []
        for it, i, rows in zip(items, idx, memories):
            prompts.append(encode_latent(self.generator.tokenizer, it.example.question, len(rows), self.prompt_cfg, T))
            vectors.append(self.compressor.project(latents[rows]).reshape(len(rows) * T, -1))
            answers.append(self.teacher["answers"][i])
        N = t.distill_tokens
        logits, mask = self.generator.forced_logits(prompts, vectors, answers, N)
        ti = torch.zeros((len(items), N, self.teacher["indices"].shape[-1]), dtype=torch.long)
        tl = torch.full((len(items), N, ti.shape[-1]), -1e4)
        for r, (i, a) in enumerate(zip(idx, answers)):
            ti[r, N - len(a):] = self.teacher["indices"][i, :len(a)].long()
            tl[r, N - len(a):] = self.teacher["logprobs"][i, :len(a)].float()
        kl = distillation_kl(logits, ti.to(logits.device), tl.to(logits.device), mask)
        # with w_answer the cached answers are the reference answers (checked when the cache is built)
        return kl, answer_cross_entropy(logits, answers) if t.w_answer else None

    # -- validation ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        if not self.val:
            raise SystemExit("the compressor's val_data has no questions with evidence: validation (and the best "
                             "checkpoint) needs some")
        self.compressor.eval()
        latents = [compress_evidence(self.compressor, ex.pool) for ex in self.val]
        answers, retrieved, _ = answer(self.compressor, self.generator, self.val,
                                       pool_retriever(self.compressor, self.val, latents), self.tcfg.val_k,
                                       self.prompt_cfg, desc="validation")
        self.compressor.train()
        recalls = [len({e.id for e in r} & set(ex.gold_ids)) / len(ex.gold_ids)
                   for ex, r in zip(self.val, retrieved) if ex.gold_ids]
        return {"val_recall": sum(recalls) / max(len(recalls), 1),
                "val_f1": mean_f1(answers, [ex.answers for ex in self.val])}

    # -- checkpoints -----------------------------------------------------------------------------------------
    def save(self, name: str, state: dict | None = None) -> None:
        save_checkpoint(self.out, name, self.compressor.save, self.optimizer, self.scheduler, state)

    def _stats_evidence(self) -> list[Evidence]:
        n_items = self.tcfg.latent_stats_items
        evidence = []
        for it in self.items:
            evidence += it.example.pool
            if len(evidence) >= n_items:
                break
        return evidence[:n_items]

    def _fit_latent_stats(self) -> None:
        """Latent statistics of the untrained compressor over the first training items' evidence (their pools in
        order, up to 512 items), in eval mode: deterministic, and part of every checkpoint."""
        self.compressor.eval()
        c = self.compressor
        ids, prefixes = c.evidence_inputs(self._stats_evidence())
        c.fit_latent_stats(ids, prefixes=prefixes)
        self.compressor.train()

    def _image_features_in_order(self, done_steps: int | None) -> None:
        """Image evidence only: compute image features in the batches an uninterrupted run computes them (a
        convolution's last bits depend on its batch), so that a resumed run ends with the same weights. done_steps
        None (at construction): the teacher prompts' images, as if the teacher were computed here; a number (a
        resume): the latent statistics' evidence and every finished step's and validation's evidence."""
        t = self.tcfg
        if self.compressor.vision is None or isinstance(self.generator, VLMGenerator) or done_steps == 0:
            return
        with torch.no_grad():
            if done_steps is None:
                for it in self.items:
                    prompt = self._teacher_prompt(it)
                    if isinstance(prompt, LatentPrompt):
                        self.generator.slot_vectors(prompt)
                return
            self.compressor.evidence_inputs(self._stats_evidence())
            for step in range(done_steps):
                for micro in range(t.grad_accum):
                    rng = random.Random(f"{t.seed}-{step}-{micro}")
                    self.compressor.evidence_inputs(self._step_evidence(self.batch(step * t.grad_accum + micro),
                                                                        rng)[2])
                if (step + 1) % t.eval_every == 0 or step + 1 == t.steps:
                    for ex in self.val:
                        self.compressor.evidence_inputs(ex.pool)

    # -- the loop's hooks (lmem.training.run_steps) ---------------------------------------------------------
    OUTPUTS = ("last", "best", "init", "train_log.csv", "val_log.csv")  # what a run that starts over removes

    @property
    def cfg(self) -> TrainConfig:  # the loop's name for a trainer's options
        return self.tcfg

    def train(self, stop_after: int | None = None) -> dict:
        state = resume(self, self.tcfg.steps, self.OUTPUTS)
        self._image_features_in_order(state["step"])
        self.compressor.train()
        run_steps(self, state, self.tcfg.steps, "train", stop_after)
        return state

    def before_resume(self) -> None:
        if not (self.out / "init" / "compressor.safetensors").exists():
            if self.spec.get("init_dir"):  # a second stage: the first's trained weights and latent statistics
                self.compressor.load_trainable(self.spec["init_dir"])
            elif self.compressor.cfg.latent_standardize:
                self._fit_latent_stats()
            self.save("init")  # where training starts, for the "before training" numbers
        else:  # restarted: the saved initial state, latent statistics included
            self.compressor.load_trainable(self.out / "init")

    def new_state(self) -> dict:
        return {"step": 0, "best": None, "best_step": None, "key": self.key}

    def load_last(self, folder: Path) -> None:
        self.compressor.load_trainable(folder)

    def step(self, step: int) -> dict[str, float]:
        t = self.tcfg
        torch.manual_seed(t.seed * 1_000_003 + step)  # dropout: a function of the step, so resume is exact
        parts: dict[str, float] = {}
        for micro in range(t.grad_accum):
            rng = random.Random(f"{t.seed}-{step}-{micro}")
            with autocast_context(t.autocast):
                losses = self.losses(self.batch(step * t.grad_accum + micro), rng, step)
            total = sum(getattr(t, f"w_{k}") * v for k, v in losses.items())
            (total / t.grad_accum).backward()
            for k, v in losses.items():
                parts[k] = parts.get(k, 0.0) + v.item() / t.grad_accum
            parts["loss"] = parts.get("loss", 0.0) + total.item() / t.grad_accum
        return parts

    def log_row(self, parts: dict[str, float]) -> dict:
        return {k: round(v, 5) for k, v in parts.items()}

    def after_step(self, done: int, state: dict) -> None:
        """Validation every eval_every steps and at the end; the best checkpoint by `better`."""
        t = self.tcfg
        if done % t.eval_every == 0 or done == t.steps:
            metrics = self.validate()
            append_csv(self.out / "val_log.csv", {"step": done, **metrics})
            log.info("step %d: %s", done, metrics)
            if better(metrics, state.get("best")) or not (self.out / "best/compressor.safetensors").exists():
                state.update(best={**metrics, "step": done}, best_step=done)
                self.save("best")


def main(argv: list[str] | None = None) -> None:
    trainer_cli(__doc__, "compressor, train, train_data, val_data, generator, prompt, seed", argv,
                lambda spec, out: Trainer(spec, out, load_split(spec["train_data"], "train"),
                                          load_split(spec["val_data"], "val")))


if __name__ == "__main__":
    main()
