"""A memory of 1,000,000 latents: FAISS flat, IVF and IVF-PQ over retrieval embeddings of the real dimension (512,
the compressor's retrieval head), synthetic but clustered like real evidence (items around topic centres; queries
near an item). Prints, per index: build time, memory (the serialised index), bytes per item, query latency at k = 5
(one batch of all queries, and one query at a time), and recall@5 against flat (the share of flat's top-5 found).
Also the latent storage forms of lmem/index.py (fp16, int8, PQ) on 576-d latents: bytes per item and relative error.

A benchmark, not a test: it prints figures.
    python benchmarks/latent_storage.py                       # 1,000,000 items, 1,000 queries
    python benchmarks/latent_storage.py --items 100000        # a quick look
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np
import torch

from lmem.index import encode_latents, decode_latents


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def synthetic(n: int, d: int, topics: int, spread: float, rng: np.random.Generator) -> np.ndarray:
    centres = unit(rng.standard_normal((topics, d)).astype(np.float32))
    out = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, 100_000):  # in chunks: the noise of a million rows at once is another 2 GB
        m = min(100_000, n - s)
        out[s:s + m] = unit(centres[rng.integers(0, topics, m)] + spread * rng.standard_normal((m, d)).astype(
            np.float32) / np.sqrt(d))
    return out


def measure(name, index, data, queries, truth, k, train=None):
    t0 = time.time()
    if train is not None:
        index.train(train)
    index.add(data)
    build = time.time() - t0
    nbytes = len(faiss.serialize_index(index))
    t0 = time.time()
    _, rows = index.search(queries, k)
    batch_ms = 1000 * (time.time() - t0) / len(queries)
    t0 = time.time()
    for q in queries[:50]:
        index.search(q[None], k)
    single_ms = 1000 * (time.time() - t0) / 50
    recall = float(np.mean([len(set(r) & set(t)) / k for r, t in zip(rows, truth)])) if truth is not None else 1.0
    print(f"| {name} | {build:.1f} | {nbytes / 2 ** 20:.0f} | {nbytes / len(data):.1f} | {batch_ms:.3f} | "
          f"{single_ms:.2f} | {recall:.3f} |", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--topics", type=int, default=20_000)
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--nprobe", type=int, default=32)
    ap.add_argument("--pq-m", type=int, nargs="+", default=[64, 128], help="PQ codes per vector (one byte each)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    faiss.omp_set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    data = synthetic(args.items, args.dim, args.topics, 1.0, rng)
    picks = rng.integers(0, args.items, args.queries)
    queries = unit(data[picks] + 0.5 * rng.standard_normal((args.queries, args.dim)).astype(np.float32)
                   / np.sqrt(args.dim))
    train = data[rng.choice(args.items, min(args.items, 64 * args.nlist), replace=False)]
    k = 5
    print(f"{args.items:,} items x {args.dim} float32 ({data.nbytes / 2 ** 30:.2f} GiB) in {time.time() - t0:.1f}s; "
          f"{args.queries} queries; k = {k}; IVF nlist {args.nlist}, nprobe {args.nprobe}; {args.threads} threads\n")
    print("| index | build s | memory MiB | bytes/item | ms/query (batch) | ms/query (one) | recall@5 vs flat |")
    print("|---|---|---|---|---|---|---|")
    truth = measure("flat (exact inner product)", faiss.IndexFlatIP(args.dim), data, queries, None, k)
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(args.dim), args.dim, args.nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.nprobe = args.nprobe
    measure("IVF-Flat", ivf, data, queries, truth, k, train)
    for m in args.pq_m:
        pq = faiss.IndexIVFPQ(faiss.IndexFlatIP(args.dim), args.dim, args.nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
        pq.nprobe = args.nprobe
        measure(f"IVF-PQ ({m} B codes)", pq, data, queries, truth, k, train)

    # the latent forms Latent Memory stores (what goes to the generator), on 20,000 latents of SmolLM2's width
    print("\n| latent storage (20,000 x 576) | bytes/item | relative error |\n|---|---|---|")
    latents = torch.from_numpy(synthetic(20_000, 576, 2_000, 1.0, rng) * 40).half()[:, None, :]
    print(f"| fp16 | {576 * 2} | 0 |")
    for storage in ("int8", "pq"):
        tensors, nbytes = encode_latents(latents, storage, 64)
        err = (decode_latents(tensors, tuple(latents.shape)).float() - latents.float()).norm() / latents.float().norm()
        print(f"| {storage} | {nbytes:.1f} | {float(err):.4f} |")


if __name__ == "__main__":
    main()
