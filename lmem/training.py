"""What every trainer shares (the compressor's `lmem.train_compressor`, xRAG's `lmem.train_xrag`, the vision
module's `lmem.train_vision`): the one training loop (`resume`, `run_steps`), checkpoints, the resume rule, the frozen
generator, the cached teacher, data loading and the command line.

A trainer supplies what is its own: `out`, `key` (`run_key`), `params`, `optimizer`, `scheduler`, `cfg` (with
`save_every`, `max_grad_norm`), `save(name, state)`, `before_resume()`, `load_last(folder)`, `new_state()`,
`step(step) -> parts` (the step's losses as floats, `loss` among them, after `backward()`), `log_row(parts)` (the CSV
columns between `step` and `lr`) and `after_step(done, state)` (e.g. validation); `LoopHooks` gives the defaults of
`before_resume`, `new_state` and `after_step`. The loop does the rest: resume from `last/` when it belongs to this
run, seeded steps, gradient clipping and the optimizer step, progress, one `train_log.csv` row per step, `last/`
every `save_every` steps and at the end, and `stop_after` (as if killed there; the next run resumes).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from lmem.data import load_examples
from lmem.io import append_csv, atomic_path, move_entries, sha256_file, sha256_json, write_json
from lmem.records import Evidence, Example
from lmem.stage import parse_spec, setup
from lmem.vlm import make_generator

log = logging.getLogger("lmem.training")


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


class LoopHooks:
    """The hooks a trainer without extra work at them leaves as they are: nothing before resuming, a new state of
    step 0 (with the run's key), nothing after a step. The compressor's trainer overrides all three."""

    key: str

    def before_resume(self) -> None:
        pass

    def new_state(self) -> dict:
        return {"step": 0, "key": self.key}

    def after_step(self, done: int, state: dict) -> None:
        pass


def resume(trainer, total: int, outputs: tuple[str, ...]) -> dict:
    """The loop state to start from: the trainer's `last/` when it belongs to this run and is unfinished (its
    weights, optimizer and scheduler restored), else a new state (a stale or finished run's `outputs` removed)."""
    discard_stale_run(trainer.out, trainer.key, total, outputs)
    trainer.before_resume()
    state = load_resume_state(trainer.out / "last", trainer.optimizer, trainer.scheduler)
    if state is None:
        return trainer.new_state()
    trainer.load_last(trainer.out / "last")
    return state


def run_steps(trainer, state: dict, total: int, desc: str, stop_after: int | None = None) -> bool:
    """Steps state["step"] .. total - 1 of `trainer`; True when all are done, False when stopped at stop_after."""
    bar = tqdm(range(state["step"], total), desc=desc, initial=state["step"], total=total, mininterval=5)
    for step in bar:
        start = time.time()
        parts = trainer.step(step)
        optimizer_step(trainer.params, trainer.optimizer, trainer.scheduler, trainer.cfg.max_grad_norm)
        done = step + 1
        append_csv(trainer.out / "train_log.csv", {"step": done, **trainer.log_row(parts),
                                                   "lr": trainer.scheduler.get_last_lr()[0],
                                                   "seconds": round(time.time() - start, 3)})
        bar.set_postfix(loss=f"{parts['loss']:.3f}")
        state["step"] = done
        trainer.after_step(done, state)
        stopping = stop_after is not None and done >= stop_after
        if done % trainer.cfg.save_every == 0 or done == total or stopping:
            trainer.save("last", dict(state))
        if stopping:
            return False
    return True


def load_split(spec: list[dict] | dict, role: str) -> list[Example]:
    """Examples for training or validation: one data spec or a list of them (loader, source, limit...)."""
    specs = spec if isinstance(spec, list) else [spec]
    out = []
    for i, s in enumerate(specs):
        out += load_examples(s.get("name", f"{role}{i}"), s).examples
    return out


UNPUBLISHED = ("last", "teacher.pt")  # what stays behind in the partial folder (and goes with it) when work is done


def publish_work(partial: Path, final: Path) -> None:
    """Move what a finished training made in `partial` into `final` (each entry renamed into place, a folder the
    DAG made for it replaced), except the resume checkpoint and the teacher cache; then remove `partial`. So a
    finished folder never holds half-finished work, and a half-finished one is never taken for finished."""
    move_entries(partial, final, skip=lambda name: name in UNPUBLISHED or name.startswith("."))
    shutil.rmtree(partial)
    log.info("published %s -> %s", partial, final)


def trainer_cli(doc: str, spec_keys: str, argv: list[str] | None, make_trainer, with_config: bool = False) -> None:
    """The command line every trainer shares: --spec JSON|@file, --out DIR, --threads, --stop-after (as if killed
    there; the next run resumes), --publish FINAL (the DAG's: train in DIR, then move the finished work to FINAL,
    publish_work). `make_trainer(spec, out)` builds the trainer; its final state (with the training config when
    `with_config`) goes to DIR/train_state.json."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", required=True, help=spec_keys)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--stop-after", type=int, default=None, help="stop after this step (as if killed), resumable")
    ap.add_argument("--publish", default=None, help="when training completes, move its outputs (not last/) here")
    args = ap.parse_args(argv)
    setup(args.threads)
    trainer = make_trainer(parse_spec(args.spec), args.out)
    state = trainer.train(args.stop_after)
    write_json(Path(args.out) / "train_state.json", {**state, "config": asdict(trainer.cfg)} if with_config else state)
    if args.publish and (args.stop_after is None or state["step"] < args.stop_after):
        publish_work(Path(args.out), Path(args.publish))
