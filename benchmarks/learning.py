"""Does the Latent Memory compressor learn? Trains one compressor of a profile for a fixed budget and prints, at
every validation, latent retrieval recall@k and latent-memory F1 on the held-out questions, next to the untrained
compressor (step 0, the same validation) and closed book (the generator with no evidence, same questions).

A benchmark, not a test: it prints figures. Run it by hand, e.g.
    python benchmarks/learning.py --config config/ci.yaml --compressor smollm2 --steps 150 --out /tmp/learn
The training options are the profile's (`compressors.<name>.train`), with `--steps`, `--eval-every`, `--lr` and
`--set key=value` (a number or a word) to override them. Text compressors only (no vision module).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import torch

from lmem.config import load_config
from lmem.generator import Generator
from lmem.metrics.qa import mean_f1
from lmem.prompts import encode_text
from lmem.train_compressor import Trainer
from lmem.training import load_split


def closed_book_f1(generator: Generator, examples, prompt_cfg: dict) -> float:
    prompts = [encode_text(generator.tokenizer, ex.question, [], prompt_cfg) for ex in examples]
    answers = generator.generate(prompts, desc="closed book")
    return mean_f1(answers, [ex.answers for ex in examples])


def parse_value(v: str):
    try:
        return json.loads(v)
    except json.JSONDecodeError:
        return v


def training_arguments(doc: str) -> argparse.ArgumentParser:
    """The options every compressor-training benchmark takes (config, compressor, steps, lr, --set, out)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="config/ci.yaml")
    ap.add_argument("--compressor", default="smollm2")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--eval-every", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="another training option")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True, help="the trainer's folder (removed first: a fresh run)")
    return ap


def training_options(args) -> tuple[dict, dict, dict]:
    """(profile config, compressor entry, training options with the command line's overrides); text only."""
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    c = config["compressors"][args.compressor]
    if c.get("vision"):
        raise SystemExit(f"{args.compressor} reads images: this benchmark trains text compressors only")
    if c.get("init_from"):
        raise SystemExit(f"{args.compressor} is a second stage (init_from: {c['init_from']}): this benchmark trains "
                         "from the base model; give a first stage's entry, or train the DAG's second stage")
    train = dict(c.get("train", {}))
    for key, value in (("steps", args.steps), ("eval_every", args.eval_every), ("lr", args.lr)):
        if value is not None:
            train[key] = value
    for kv in args.set:
        key, _, value = kv.partition("=")
        train[key] = parse_value(value)
    return config, c, train


def main() -> None:
    ap = training_arguments(__doc__)
    args = ap.parse_args()
    config, c, train = training_options(args)
    spec = {"compressor": c, "train": train, "train_data": c["train_data"], "val_data": c["val_data"],
            "generator": config["generator"], "prompt": config["prompt"], "seed": config["seed"]}
    out = Path(args.out)
    if out.exists():
        import shutil

        shutil.rmtree(out)
    start = time.time()
    trainer = Trainer(spec, out, load_split(spec["train_data"], "train"), load_split(spec["val_data"], "val"))
    if trainer.compressor.cfg.latent_standardize:  # as train() does first: the untrained compressor's state
        trainer._fit_latent_stats()
    untrained = trainer.validate()
    closed = closed_book_f1(trainer.generator, trainer.val, config["prompt"])
    setup_s = time.time() - start
    state = trainer.train()
    rows = list(csv.DictReader(open(out / "val_log.csv")))
    log = list(csv.DictReader(open(out / "train_log.csv")))
    print(f"# {args.config} compressor {args.compressor}, seed {config['seed']}, {len(trainer.items)} training items,"
          f" {len(trainer.val)} validation questions, training options {json.dumps(train, sort_keys=True)}")
    print(f"# set-up (models, teacher, untrained validation, closed book) {setup_s:.0f} s; training "
          f"{sum(float(r['seconds']) for r in log):.0f} s in {len(log)} steps")
    print("| step | val recall@k | val F1 | recon | contrast | distill | answer |")
    print("|---|---|---|---|---|---|---|")
    print(f"| closed book | - | {closed:.1f} | | | | |")
    print(f"| 0 (untrained) | {untrained['val_recall']:.3f} | {untrained['val_f1']:.1f} | | | | |")
    by_step = {int(r["step"]): r for r in log}
    for r in rows:
        step = int(r["step"])
        lo = by_step[step]
        losses = " | ".join(f"{float(lo[k]):.3f}" if lo.get(k) else "" for k in ("recon", "contrast", "distill",
                                                                                  "answer"))
        print(f"| {step} | {float(r['val_recall']):.3f} | {float(r['val_f1']):.1f} | {losses} |")
    print(f"# best step {state['best_step']}; first-step losses: "
          + ", ".join(f"{k} {float(v):.3f}" for k, v in log[0].items() if k not in ("step", "lr", "seconds")))


if __name__ == "__main__":
    main()
