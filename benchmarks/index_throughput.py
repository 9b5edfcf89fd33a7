"""Latent index build throughput: the batched, length-sorted build (lmem.index.build_index) against a
one-item-at-a-time loop, and against the compressor's raw forward throughput at the same batch size.

Prints evidence items per second for each. A benchmark, not a test: run it by hand, e.g.
    python benchmarks/index_throughput.py --items 512 --batch-size 32 --threads 2
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from lmem.compressor import CompressorConfig, build_compressor
from lmem.data import load_examples
from lmem.index import build_index


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--num-layers", type=int, default=None)
    ap.add_argument("--items", type=int, default=512)
    ap.add_argument("--loop-items", type=int, default=64, help="items for the (slow) one-at-a-time loop")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    examples, n = [], 0
    for ex in load_examples("synth", {"loader": "hotpotqa", "source": {"synth": {"seed": 0, "n_test": 1000}}}).examples:
        if n >= args.items:
            break
        ex.pool = ex.pool[: args.items - n]
        n += len(ex.pool)
        examples.append(ex)
    texts = [e.text for ex in examples for e in ex.pool]
    comp = build_compressor(CompressorConfig(model=args.model, dtype=args.dtype, num_layers=args.num_layers)).eval()
    ids = comp.tokenize(texts, comp.cfg.max_evidence_tokens)
    with torch.no_grad():
        comp.compress(ids[: args.batch_size])  # warm-up

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        build_index(comp, examples, tmp, batch_size=args.batch_size)
        batched = len(texts) / (time.perf_counter() - start)

    loop_ids = ids[: args.loop_items]
    start = time.perf_counter()
    with torch.no_grad():
        for seq in loop_ids:
            comp.compress([seq])
    loop = len(loop_ids) / (time.perf_counter() - start)

    # raw forward: same batches of the same (length-sorted) items, nothing else (no I/O, no retrieval head)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    start = time.perf_counter()
    with torch.no_grad():
        for s in range(0, len(order), args.batch_size):
            comp.compress([ids[i] for i in order[s:s + args.batch_size]])
    raw = len(ids) / (time.perf_counter() - start)

    mean_tokens = sum(map(len, ids)) / len(ids)
    print(f"model {args.model} dtype {args.dtype} layers {args.num_layers or 'all'} threads {args.threads}; "
          f"{len(texts)} synth evidence items, {mean_tokens:.1f} tokens each on average")
    print(f"{'one item at a time':<34} {loop:9.1f} items/s  ({len(loop_ids)} items)")
    print(f"{'batched index build (bs=%d)' % args.batch_size:<34} {batched:9.1f} items/s  "
          f"({batched / loop:.1f}x the loop)")
    print(f"{'raw compressor forward (bs=%d)' % args.batch_size:<34} {raw:9.1f} items/s  "
          f"(index build = {100 * batched / raw:.0f}% of it)")


if __name__ == "__main__":
    main()
