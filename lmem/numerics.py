"""This machine's float arithmetic as one fingerprint, and the environment a profile ran in.

Training turns a difference in the last bit of one kernel into other weights: after the ci profile's 240 compressor
steps, a machine whose kernels round differently (an AVX-512 machine run unpinned; the CI machine of one
submission) gave 110-117 of the 1,554 compared values out of tolerance, every one on a trained method's row, while
the rows of untrained methods stayed equal. `fingerprint()` runs a fixed float32 probe through the kernels training
uses (the matrix products of a Llama block at SmolLM2-135M's widths, RMSNorm, rotary attention, SiLU, softmax
cross-entropy over its 49,152-token vocabulary, their backward pass and an AdamW step) on inputs made by NumPy's
seeded generator (no torch RNG kernels) and hashes every output bit. Two machines with the same fingerprint, the
same thread count and the same packages compute the probe bit for bit alike; a different fingerprint says the
arithmetic differs, and `lmem regress` then compares trained rows at the profile's cross-machine tolerances
(README, "Tests and CI").

The `report` stage writes `results/<profile>/environment.json` (`environment()`): the fingerprint, the CPU, the
kernel settings (`PIN` in the Makefile), the thread count and the versions of the packages that compute.

Usage: python -m lmem.numerics [--out results/<profile>/environment.json] [--threads N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
from importlib import metadata

import numpy as np

KERNEL_ENV = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "OMP_NUM_THREADS",
              "MKL_NUM_THREADS")
PACKAGES = ("torch", "transformers", "peft", "numpy", "faiss-cpu", "tokenizers", "safetensors", "bm25s")


def fingerprint() -> str:
    """16 hex digits of a SHA-256 over the probe's outputs, gradients and updated weights (float32 bits)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=2,
                      num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=256, rms_norm_eps=1e-5,
                      tie_word_embeddings=True, attn_implementation="sdpa")
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg)
    rng = np.random.default_rng(0)
    state = {name: torch.from_numpy((rng.standard_normal(p.shape) * (1.0 if p.ndim == 1 else 0.02)
                                     + (1.0 if p.ndim == 1 else 0.0)).astype(np.float32))
             for name, p in model.named_parameters()}
    model.load_state_dict(state, assign=True, strict=False)
    model.model.rotary_emb = type(model.model.rotary_emb)(cfg)  # its buffers, computed on the CPU
    model.tie_weights()
    ids = torch.from_numpy(rng.integers(0, cfg.vocab_size, size=(2, 48)))
    digest = hashlib.sha256()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(2):
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        digest.update(out.logits.detach().numpy().tobytes())
        for p in model.parameters():
            digest.update(p.grad.numpy().tobytes())
        opt.step()
        opt.zero_grad()
    for p in model.parameters():
        digest.update(p.detach().numpy().tobytes())
    return digest.hexdigest()[:16]


def cpu() -> dict:
    """The CPU's model name and the widest vector extension it has (from /proc/cpuinfo where there is one)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    isa = next((name for name, flag in (("AVX-512", "avx512f"), ("AVX2", "avx2"), ("AVX", "avx")) if flag in flags),
               "other")
    return {"model": model, "isa": isa, "avx512_bf16": "avx512_bf16" in flags, "logical_cpus": os.cpu_count()}


def environment() -> dict:
    import torch

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"fingerprint": fingerprint(), "cpu": cpu(), "threads": torch.get_num_threads(),
            "kernel_env": {k: os.environ.get(k) for k in KERNEL_ENV}, "python": platform.python_version(),
            "packages": versions}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="write the environment here (JSON) instead of printing it")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    from lmem.io import write_json
    from lmem.stage import setup

    setup(args.threads)
    env = environment()
    if args.out:
        write_json(args.out, env)
    else:
        print(json.dumps(env, indent=2))


if __name__ == "__main__":
    main()
