"""Stage `run`: one method on one benchmark at one k; writes per-question predictions (JSONL) and run metadata.

Usage: python -m lmem.run --data DATA.jsonl --spec JSON --k K|all --out PRED.jsonl [--threads N]
The spec holds the method's name and config entry and the generator, prompt, retriever and seed sections.
"""

from __future__ import annotations

import argparse
import logging
import platform
import random
import time

import numpy as np
import torch

from lmem import __version__, baselines
from lmem.io import sha256_file, write_json, write_jsonl
from lmem.prepare import meta_path, read_examples
from lmem.score import git_commit
from lmem.stage import parse_spec, setup
from lmem.vision import load_vision
from lmem.vlm import make_generator

log = logging.getLogger("lmem.run")


def vision_tag(folder: str) -> str:
    return f"vision:{folder.rstrip('/').rsplit('/', 1)[-1]}@{sha256_file(f'{folder}/projector.safetensors')[:12]}"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run(data: str, spec: dict, k: str, out: str) -> dict:
    seed_everything(spec["seed"])
    method_cls = baselines.get(spec["method_spec"].get("class", spec["method"]))
    method = method_cls(spec["method_spec"], spec, label=spec["method"])
    if method_cls.uses_k and k == "all":
        raise SystemExit(f"method {spec['method']} takes a top-k: give it k values in the config")
    examples = read_examples(data)
    t0 = time.time()
    # a method may bring its own generator settings (e.g. another family's model), merged over the run's
    vision = None
    if spec.get("vision_dir"):  # a benchmark with images: the composed VLM reads them
        vision = load_vision(spec["vision_dir"], spec.get("images"))
    generator = make_generator({**spec["generator"], **spec["method_spec"].get("generator", {})}, vision=vision,
                               images=spec.get("images"))
    skipped = None
    try:
        predictions = method.run(examples, generator, int(k) if method_cls.uses_k else None)
    except baselines.MethodUnavailable as e:  # recorded, not a crash: the rest of the DAG goes on
        predictions, skipped = [], str(e)
        log.warning("SKIPPED %s k=%s on %s: %s", spec["method"], k, data, skipped)
    seconds = time.time() - t0
    write_jsonl(out, (p.to_dict() for p in predictions))
    meta = {"method": spec["method"], "k": k, "n": len(predictions), "seconds": round(seconds, 2),
            "generator": generator.resolved.to_dict(), "spec": spec, "bytes_per_item": method.bytes_per_item,
            "models": {**method.models, **({"vision": vision_tag(spec["vision_dir"])} if vision else {})},
            "skipped": skipped, "lmem_version": __version__, "git_commit": git_commit(),
            "torch": torch.__version__, "platform": platform.platform(), "threads": torch.get_num_threads(),
            "device": str(generator.model.device)}
    write_json(meta_path(out), meta)
    log.info("%s k=%s: %d predictions in %.1fs", spec["method"], k, len(predictions), seconds)
    return meta


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--spec", required=True)
    ap.add_argument("--k", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    setup(args.threads)
    run(args.data, parse_spec(args.spec), args.k, args.out)


if __name__ == "__main__":
    main()
