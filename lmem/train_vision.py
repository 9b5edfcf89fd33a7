"""Stage `train_vision`: the composed VLM's projector (lmem.vision), LLaVA's recipe with a frozen LM: cross-entropy
on the reference answer of training questions shown with their gold image(s) and `distractors` other pool images;
WebQA accuracy on validation questions at the end.

Usage: python -m lmem.train_vision --spec JSON --out DIR   (DIR/projector.safetensors, vision.json, train_log.csv)
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import get_cosine_schedule_with_warmup

from lmem.io import append_csv
from lmem.losses import answer_cross_entropy
from lmem.metrics.webqa import webqa_accuracy
from lmem.options import VisionTrainConfig
from lmem.records import Evidence, Example
from lmem.training import (LoopHooks, frozen_generator, load_split, publish, resume, run_key, run_steps,
                           save_checkpoint, trainer_cli, training_items)
from lmem.vision import Vision, VisionConfig

log = logging.getLogger("lmem.train_vision")


class VisionTrainer(LoopHooks):
    def __init__(self, spec: dict, out_dir: str | Path, train_examples: list[Example], val_examples: list[Example]):
        self.spec, self.out = spec, Path(out_dir)
        self.cfg = VisionTrainConfig.from_dict(dict(spec.get("train", {}), seed=spec.get("seed", 0)))
        self.prompt_cfg = spec["prompt"]
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(self.cfg.seed)
        self.generator = frozen_generator(spec["generator"])
        emb = self.generator.model.get_input_embeddings().weight
        vcfg = VisionConfig(encoder=spec.get("encoder", "efficientnet-lite0"), grid=spec.get("grid", 2),
                            image_size=spec.get("image_size", 128), hidden=int(emb.shape[1]),
                            out_std=float(emb.float().std()), generator=spec["generator"]["model"])
        self.vision = Vision(vcfg, spec.get("images"))
        self.generator.vision = self.vision
        self.items = [it for it in training_items(train_examples, 3) if any(e.kind == "image" for e in it.positives)]
        if not self.items:
            raise SystemExit("no training questions with a gold image and an answer; check the vision train_data")
        self.val = [ex for ex in val_examples if any(e.gold and e.kind == "image" for e in ex.pool)]
        self.val = self.val[: self.cfg.val_questions]
        self.key = run_key(spec, train_examples + val_examples)
        self.params = list(self.vision.projector.parameters())
        self.optimizer = torch.optim.AdamW(self.params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        self.scheduler = get_cosine_schedule_with_warmup(self.optimizer, self.cfg.warmup_steps, self.cfg.steps)

    def _shown(self, ex: Example, gold: list[Evidence], rng: random.Random) -> list[Evidence]:
        others = [e for e in ex.pool if not e.gold]
        chosen = gold + rng.sample(others, min(self.cfg.distractors, len(others)))
        pos = {e.id: i for i, e in enumerate(ex.pool)}
        return sorted(chosen, key=lambda e: pos[e.id])

    def _step_prompts(self, step: int) -> tuple[list, list]:
        """The step's training items and their prompts (gold image(s) plus distractors): a function of the step."""
        rng = random.Random(f"{self.cfg.seed}-{step}")
        items = [self.items[rng.randrange(len(self.items))] for _ in range(self.cfg.batch_size)]
        prompts = [self.generator.encode_evidence(it.example.question, self._shown(it.example, it.positives, rng),
                                                  self.prompt_cfg, None) for it in items]
        return items, prompts

    def loss(self, step: int) -> torch.Tensor:
        gen = self.generator
        items, prompts = self._step_prompts(step)
        vectors = [gen.slot_vectors(p) for p in prompts]
        targets = [gen.answer_ids(it.example.answers[0], self.cfg.max_answer_tokens) for it in items]
        logits, _ = gen.forced_logits(prompts, vectors, targets, max(map(len, targets)))
        return answer_cross_entropy(logits, targets)

    def _replay_features(self, steps: int) -> None:
        """On resume: compute the image features of the steps already done, in the same batches as the killed run
        did (a convolution's last bits depend on its batch), so the resumed run ends with the same weights."""
        with torch.no_grad():
            for step in range(steps):
                for p in self._step_prompts(step)[1]:
                    self.vision.features([e for e in p.kept if e.kind == "image"])

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """WebQA accuracy of the composed VLM answering validation questions from their gold image(s) and the same
        number of distractors as in training."""
        if not self.val:  # no validation questions with a gold image: nothing to report (val_log.csv: the step)
            log.warning("vision projector: no validation questions with a gold image; validation skipped")
            return {}
        self.vision.projector.eval()
        rng = random.Random(self.cfg.seed)
        prompts = [self.generator.encode_evidence(ex.question, self._shown(ex, [e for e in ex.pool if e.gold], rng),
                                                  self.prompt_cfg, None) for ex in self.val]
        answers = self.generator.generate(prompts, desc="validation")
        self.vision.projector.train()
        acc = [max(webqa_accuracy(a, ref, ex.metadata.get("qcate") or "Others") for ref in ex.answers)
               for a, ex in zip(answers, self.val)]
        return {"val_acc": 100 * sum(acc) / len(acc)}

    # -- the loop's hooks (lmem.training.run_steps) ---------------------------------------------------------
    OUTPUTS = ("last", "final", "train_log.csv", "val_log.csv", "projector.safetensors", "vision.json")

    def save(self, name: str, state: dict | None) -> None:
        save_checkpoint(self.out, name, self.vision.save, self.optimizer, self.scheduler, state)

    def load_last(self, folder: Path) -> None:
        self.vision.projector.load_state_dict(load_file(str(folder / "projector.safetensors")))

    def step(self, step: int) -> dict:
        loss = self.loss(step)
        loss.backward()
        return {"loss": loss.item()}

    def log_row(self, parts: dict) -> dict:
        return {"answer": round(parts["loss"], 5)}

    def train(self, stop_after: int | None = None) -> dict:
        c = self.cfg
        state = resume(self, c.steps, self.OUTPUTS)
        self._replay_features(state["step"])
        self.vision.projector.train()
        if not run_steps(self, state, c.steps, "train vision", stop_after):
            return state
        metrics = self.validate()
        append_csv(self.out / "val_log.csv", {"step": c.steps, **metrics})
        log.info("vision projector: %s", metrics)
        state.update(metrics)
        self.save("final", None)
        publish(self.out, "final", ("projector.safetensors", "vision.json"))  # the final projector at the top
        return state


def main(argv: list[str] | None = None) -> None:
    def make(spec: dict, out: str) -> VisionTrainer:
        val = load_split(spec["val_data"], "val") if spec.get("val_data") else []
        return VisionTrainer(spec, out, load_split(spec["train_data"], "train"), val)

    trainer_cli(__doc__, "encoder, grid, train, train_data, val_data, generator, prompt, seed", argv, make,
                with_config=True)


if __name__ == "__main__":
    main()
