"""Stage `train`: the Latent Memory trainer (docs/method.md section 3).

L = w_recon * L_recon + w_contrast * L_contrast + w_distill * L_distill, AdamW with a cosine schedule, gradient
accumulation, bf16 autocast where the hardware supports it, periodic validation (latent retrieval recall@k and
latent-memory QA F1 on held-out questions), the best checkpoint kept by validation F1 (ties broken by recall, then
the later step).

Every step is a pure function of (seed, step): the batch comes from a seeded per-epoch permutation, negatives from a
per-step RNG, dropout from a per-step torch seed. So a run killed at any point and restarted from its last
checkpoint (trainable weights, optimizer and scheduler state, step) ends with the same weights as an uninterrupted
one on CPU. The frozen teacher's answers and top-k log-probabilities are computed once per training example and
cached (teacher.pt).

Usage: python -m lmem.train --spec JSON --out DIR   (DIR/best, DIR/init, DIR/last, DIR/train_log.csv)
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from lmem.compressor import CompressorConfig, build_compressor
from lmem.data import load_examples
from lmem.io import append_csv, atomic_path, sha256_file, sha256_json, write_json
from lmem.losses import answer_cross_entropy, distillation_kl, multi_positive_infonce
from lmem.metrics.qa import mean_f1
from lmem.options import TrainConfig, options  # noqa: F401 (options: the trainers' shared kit)
from lmem.prompts import EncodedPrompt, LatentPrompt, encode_latent
from lmem.records import Evidence, Example
from lmem.stage import parse_spec, setup

log = logging.getLogger("lmem.train")


@dataclass
class TrainItem:
    example: Example
    positives: list[Evidence]
    negatives: list[Evidence]


def training_items(examples: list[Example], max_positives: int) -> list[TrainItem]:
    items = []
    for ex in examples:
        gold = [e for e in ex.pool if e.gold][:max_positives]
        if gold and ex.answers:
            items.append(TrainItem(ex, gold, [e for e in ex.pool if not e.gold]))
    return items


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


def cached_teacher(path: Path, key: str, compute) -> dict:
    """The frozen teacher's outputs, computed once: `path` when it holds this `key`, else `compute()` (a dict),
    saved atomically with the key."""
    if path.exists():
        cached = torch.load(path)
        if cached["key"] == key:
            return cached
    cache = {"key": key, **compute()}
    with atomic_path(path) as tmp:
        torch.save(cache, tmp)
    return cache


def save_checkpoint(out: Path, name: str, save_weights, optimizer=None, scheduler=None,
                    state: dict | None = None) -> None:
    """Write out/name atomically (a temporary folder renamed into place): the weights through `save_weights(folder)`
    and, with `state`, the optimizer and scheduler state and the loop state (what a resume needs)."""
    tmp, final = out / f".{name}.tmp", out / name
    shutil.rmtree(tmp, ignore_errors=True)
    save_weights(tmp)
    if state is not None:
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "optimizer.pt")
        write_json(tmp / "state.json", state)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)


def code_version() -> str:
    """sha256 over the lmem package's source files: a resume checkpoint made by other code is not resumed."""
    root = Path(__file__).parent
    return sha256_json({str(f.relative_to(root)): sha256_file(f) for f in sorted(root.rglob("*.py"))})


def run_key(spec: dict, examples: list[Example]) -> str:
    """What a resume checkpoint must belong to: the stage's spec, its training data and the package's code."""
    return sha256_json({"spec": spec, "data": [ex.to_dict() for ex in examples], "code": code_version()})


def discard_stale_run(out: Path, key: str, steps: int, names: tuple[str, ...]) -> None:
    """Before a trainer resumes from out/last: a checkpoint made for another run key (spec, data or code) or one
    that already finished all `steps` (a forced rerun, e.g. `snakemake --forcerun`, whose outputs were deleted) is
    not resumed; the earlier run's files `names` under `out` are removed so the run starts from step 0, and the
    reason is logged."""
    path = out / "last" / "state.json"
    if not path.exists():
        return
    state = json.loads(path.read_text())
    if state.get("key") == key and state["step"] < steps:
        return
    why = ("it finished all its steps: training again" if state.get("key") == key
           else "another spec, training data or code version made it")
    log.warning("%s (step %d) is not resumed: %s, from step 0", out / "last", state["step"], why)
    for name in names:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def load_resume_state(folder: Path, optimizer, scheduler) -> dict | None:
    """The loop state saved in `folder` by save_checkpoint, with the optimizer and scheduler restored; None when
    there is nothing to resume. The caller restores its own weights from the same folder."""
    if not (folder / "state.json").exists():
        return None
    opt = torch.load(folder / "optimizer.pt")
    optimizer.load_state_dict(opt["optimizer"])
    scheduler.load_state_dict(opt["scheduler"])
    state = json.loads((folder / "state.json").read_text())
    log.info("resuming from step %d", state["step"])
    return state


def frozen_generator(cfg: dict, images: dict | None = None):
    """The generator a trainer distils from / trains against: loaded per its config section, every weight frozen."""
    from lmem.vlm import make_generator

    generator = make_generator(cfg, images=images)
    for p in generator.model.parameters():
        p.requires_grad_(False)
    return generator


def optimizer_step(params, optimizer, scheduler, max_grad_norm: float) -> None:
    """Clip the gradient norm to `max_grad_norm` (a training option, 1.0 by default in every trainer), step the
    optimizer and the schedule, clear the gradients."""
    torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def publish(out: Path, checkpoint: str, names: tuple[str, ...]) -> None:
    """Copy the files `names` of the checkpoint folder out/checkpoint to the top of `out`, each atomically (what
    the DAG's rule declares as its output)."""
    for name in names:
        shutil.copy(out / checkpoint / name, out / f".{name}.tmp")
        (out / f".{name}.tmp").rename(out / name)


class Trainer:
    def __init__(self, spec: dict, out_dir: str | Path, train_examples: list[Example], val_examples: list[Example]):
        from lmem.vlm import VLMGenerator

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
        from transformers import get_cosine_schedule_with_warmup

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
        if t.w_contrast:
            queries = c.embed_query(c.tokenize([it.example.question for it in items], c.cfg.max_query_tokens))
            cands = c.retrieval_embedding(latents)
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
            kl, nll = self._distill(items, idx, negs if step >= t.reading_warmup else [[] for _ in negs], latents,
                                    slot, rng)
            if t.w_distill:
                out["distill"] = kl
            if t.w_answer:
                out["answer"] = nll
        return out

    def _distill(self, items, idx, negs, latents, slot, rng):
        """(KL to the teacher, cross-entropy on the reference answer or None) over the N answer positions."""
        t, T = self.tcfg, self.compressor.cfg.num_mem_tokens
        prompts, vectors, answers = [], [], []
        for b, (it, i) in enumerate(zip(items, idx)):
            pos = {e.id: p for p, e in enumerate(it.example.pool)}
            chosen = sorted(it.positives, key=lambda e: pos[e.id])  # the teacher's order
            extra = negs[b][: t.distill_negatives]  # student-only negative latents, placed at random
            for e in extra:
                chosen.insert(rng.randrange(len(chosen) + 1), e)
            rows = [slot[(b, e.id)] for e in chosen]
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
        from lmem.latent_memory import answer, compress_evidence, pool_retriever

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
    def _save_dir(self, name: str, state: dict | None = None) -> None:
        save_checkpoint(self.out, name, self.compressor.save, self.optimizer, self.scheduler, state)

    def _resume(self) -> dict:
        state = load_resume_state(self.out / "last", self.optimizer, self.scheduler)
        if state is None:
            return {"step": 0, "best": None, "best_step": None, "key": self.key}
        self.compressor.load_trainable(self.out / "last")
        return state

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
        from lmem.vlm import VLMGenerator

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

    # -- loop ------------------------------------------------------------------------------------------------
    def train(self, stop_after: int | None = None) -> dict:
        t = self.tcfg
        discard_stale_run(self.out, self.key, t.steps, ("last", "best", "init", "train_log.csv", "val_log.csv"))
        if not (self.out / "init" / "compressor.safetensors").exists():
            if self.compressor.cfg.latent_standardize:
                self._fit_latent_stats()
            self._save_dir("init")  # the untrained compressor, for the "before training" numbers
        else:  # restarted: the saved initial state, latent statistics included
            self.compressor.load_trainable(self.out / "init")
        state = self._resume()
        self._image_features_in_order(state["step"])
        self.compressor.train()
        bar = tqdm(range(state["step"], t.steps), desc="train", initial=state["step"], total=t.steps, mininterval=5)
        for step in bar:
            start = time.time()
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
            optimizer_step(self.params, self.optimizer, self.scheduler, t.max_grad_norm)
            done = step + 1
            row = {"step": done, **{k: round(v, 5) for k, v in parts.items()},
                   "lr": self.scheduler.get_last_lr()[0], "seconds": round(time.time() - start, 3)}
            append_csv(self.out / "train_log.csv", row)
            bar.set_postfix(loss=f"{parts['loss']:.3f}")
            state["step"] = done
            if done % t.eval_every == 0 or done == t.steps:
                metrics = self.validate()
                append_csv(self.out / "val_log.csv", {"step": done, **metrics})
                log.info("step %d: %s", done, metrics)
                if better(metrics, state.get("best")) or not (self.out / "best/compressor.safetensors").exists():
                    state.update(best={**metrics, "step": done}, best_step=done)
                    self._save_dir("best")
            if done % t.save_every == 0 or done == t.steps:
                self._save_dir("last", dict(state))
            if stop_after is not None and done >= stop_after:
                self._save_dir("last", dict(state))
                break
        return state


def load_split(spec: list[dict] | dict, role: str) -> list[Example]:
    """Examples for training or validation: one data spec or a list of them (loader, source, limit...)."""
    specs = spec if isinstance(spec, list) else [spec]
    out = []
    for i, s in enumerate(specs):
        out += load_examples(s.get("name", f"{role}{i}"), s).examples
    return out


def trainer_cli(doc: str, spec_keys: str, argv: list[str] | None, make_trainer, with_config: bool = False) -> None:
    """The command line every trainer shares: --spec JSON|@file, --out DIR, --threads, --stop-after (as if killed
    there; the next run resumes). `make_trainer(spec, out)` builds the trainer; its final state (with the training
    config when `with_config`) goes to DIR/train_state.json."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", required=True, help=spec_keys)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--stop-after", type=int, default=None, help="stop after this step (as if killed), resumable")
    args = ap.parse_args(argv)
    setup(args.threads)
    trainer = make_trainer(parse_spec(args.spec), args.out)
    state = trainer.train(args.stop_after)
    write_json(Path(args.out) / "train_state.json", {**state, "config": asdict(trainer.cfg)} if with_config else state)


def main(argv: list[str] | None = None) -> None:
    trainer_cli(__doc__, "compressor, train, train_data, val_data, generator, prompt, seed", argv,
                lambda spec, out: Trainer(spec, out, load_split(spec["train_data"], "train"),
                                          load_split(spec["val_data"], "val")))


if __name__ == "__main__":
    main()
