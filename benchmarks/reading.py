"""Can the frozen generator read a latent? Latent Memory's answer path without its retrieval.

`benchmarks/learning.py` validates the whole method (retrieve k latents, answer from them), so a low F1 there does
not say whether retrieval or reading failed. This benchmark gives each validation question its gold evidence's
latents plus `--k` minus that many other items of its own pool (seeded, in a seeded order) and prints, for the same
questions:
- a reference point: the generator given, in each gold slot, the input embedding of the answer itself (the mean
  of its tokens' embeddings) and, in each distractor slot, that of the distractor sentence's last word: what a
  memory that held only the answer, as a word the generator knows, gets (not a ceiling: a trained latent can say
  more than one word);
- the untrained compressor (step 0) and the compressor after every `--eval-every` training steps (F1 and
  answer-in-output accuracy on gold latents), with the step's training losses.

A benchmark, not a test: it prints figures. Run it by hand, e.g.
    python benchmarks/reading.py --config config/ci.yaml --types single --steps 60 --eval-every 30 \
        --set batch_size=16 --set w_recon=0 --set w_contrast=0 --set hard_negatives=0 --set distill_negatives=0 \
        --out /tmp/read
The training options are the profile's (`compressors.<name>.train`) with `--steps`, `--eval-every` and `--set
key=value`; `--init DIR` starts training from the compressor saved in DIR (e.g. a k = 1 run's `last/`: a curriculum);
`--types` keeps the training and validation questions of those types (`metadata.type`: synth's single,
bridge, comparison). Text compressors only.
"""

from __future__ import annotations

import csv
import json
import random
import shutil
import time
from pathlib import Path

import torch

from lmem.latent_memory import answer, compress_evidence
from lmem.metrics.qa import best_over_references, contains, mean_f1
from lmem.prompts import encode_latent
from lmem.train_compressor import Trainer
from lmem.training import load_split

from learning import training_arguments, training_options  # benchmarks/learning.py, beside this script


def accuracy(answers: list[str], examples) -> float:
    """The results tables' `acc` (lmem.metrics.qa.contains, best over references) as a share of the questions."""
    hits = [best_over_references(contains, a, ex.answers) for a, ex in zip(answers, examples)]
    return sum(hits) / max(len(hits), 1)


def memories(examples, k: int, seed: int) -> list[list]:
    """Per question: its gold evidence plus k - len(gold) other items of its pool, in a seeded order."""
    rng = random.Random(seed)
    out = []
    for ex in examples:
        gold = [e for e in ex.pool if e.gold]
        others = [e for e in ex.pool if not e.gold]
        chosen = gold + rng.sample(others, max(0, min(k - len(gold), len(others))))
        rng.shuffle(chosen)
        out.append(chosen)
    return out


class ReadingTrainer(Trainer):
    """The compressor's trainer with validation on gold latents: its `val_f1` is what the generator reads from
    the gold evidence's latents among `k` (the checkpoint logic then keeps the best reader)."""

    def __init__(self, *args, k: int, **kw):
        super().__init__(*args, **kw)
        self.memory = memories(self.val, k, self.tcfg.seed)
        self.k = k

    @torch.no_grad()
    def read(self) -> list[str]:
        self.compressor.eval()

        def retrieve(i, query, k):
            return self.memory[i], compress_evidence(self.compressor, self.memory[i])

        answers, _, _ = answer(self.compressor, self.generator, self.val, retrieve, self.k, self.prompt_cfg,
                               desc="reading")
        self.compressor.train()
        return answers

    def validate(self) -> dict[str, float]:
        answers = self.read()
        return {"val_recall": accuracy(answers, self.val), "val_f1": mean_f1(answers, [e.answers for e in self.val])}

    @torch.no_grad()
    def answer_embeddings(self) -> list[str]:
        """Answers with the answer's own token embeddings in the gold slots (distractors: their last word's)."""
        tok, emb = self.generator.tokenizer, self.generator.model.get_input_embeddings().weight.detach()

        def vector(text: str) -> torch.Tensor:
            return emb[tok(" " + text, add_special_tokens=False)["input_ids"]].float().mean(0)

        prompts, vectors = [], []
        for ex, mem in zip(self.val, self.memory):
            prompts.append(encode_latent(tok, ex.question, len(mem), self.prompt_cfg, 1))
            vectors.append(torch.stack([vector(ex.answers[0]) if e.gold else vector(e.text.rstrip(".").split()[-1])
                                        for e in mem]))
        return self.generator.generate_latent(prompts, vectors, desc="answer embeddings")


def main() -> None:
    ap = training_arguments(__doc__)
    ap.add_argument("--types", default=None, help="comma-separated question types to keep (default: all)")
    ap.add_argument("--k", type=int, default=1, help="latents per question: its gold ones, then pool distractors")
    ap.add_argument("--val-questions", type=int, default=40)
    ap.add_argument("--init", default=None, help="start training from the compressor saved in this folder")
    args = ap.parse_args()
    config, c, train = training_options(args)
    train["val_questions"] = args.val_questions
    types = set(args.types.split(",")) if args.types else None

    def keep(examples):
        return [e for e in examples if types is None or e.metadata.get("type") in types]

    val_data = dict(c["val_data"], limit=None)  # the type filter comes first; val_questions then caps
    spec = {"compressor": c, "train": train, "train_data": c["train_data"], "val_data": val_data,
            "generator": config["generator"], "prompt": config["prompt"], "seed": config["seed"]}
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    start = time.time()
    trainer = ReadingTrainer(spec, out, keep(load_split(spec["train_data"], "train")),
                             keep(load_split(val_data, "val")), k=args.k)
    if trainer.compressor.cfg.latent_standardize:  # as train() does first: the untrained compressor's state
        trainer._fit_latent_stats()
    reference, untrained = trainer.answer_embeddings(), trainer.read()
    setup_s = time.time() - start
    if args.init:  # the trainer starts from its init/ folder when there is one
        (out / "init").mkdir(parents=True, exist_ok=True)
        for f in Path(args.init).glob("compressor.*"):
            shutil.copy(f, out / "init" / f.name)
    trainer.train()
    vals = list(csv.DictReader(open(out / "val_log.csv")))
    log = {int(r["step"]): r for r in csv.DictReader(open(out / "train_log.csv"))}
    print(f"# {args.config} compressor {args.compressor}, seed {config['seed']}, types {args.types or 'all'}, "
          f"{len(trainer.items)} training items, {len(trainer.val)} validation questions, k = {args.k} (gold first "
          f"drawn, then pool distractors), training options {json.dumps(train, sort_keys=True)}")
    print(f"# set-up (models, teacher, answer embeddings, untrained) {setup_s:.0f} s; training "
          f"{sum(float(r['seconds']) for r in log.values()):.0f} s in {len(log)} steps")
    print("| step | F1 on gold latents | accuracy | contrast | distill | answer |")
    print("|---|---|---|---|---|---|")
    refs = [e.answers for e in trainer.val]
    print(f"| answer embeddings | {mean_f1(reference, refs):.1f} | {accuracy(reference, trainer.val):.3f} |"
          " | | |")
    print(f"| 0 (untrained) | {mean_f1(untrained, refs):.1f} | {accuracy(untrained, trainer.val):.3f} | | | |")
    for r in vals:
        lo = log[int(r["step"])]
        losses = " | ".join(f"{float(lo[k]):.3f}" if lo.get(k) else "" for k in ("contrast", "distill", "answer"))
        print(f"| {r['step']} | {float(r['val_f1']):.1f} | {float(r['val_recall']):.3f} | {losses} |")


if __name__ == "__main__":
    main()
