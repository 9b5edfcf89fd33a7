"""A memory of 1,000,000 latents: FAISS flat, IVF and IVF-PQ (with and without a PCA rotation) over retrieval
embeddings of the real dimension (512, the compressor's retrieval head), synthetic but clustered like real evidence
(items around topic centres; queries near an item). Prints, per index and nprobe: build time, memory (the serialised
index), bytes per item, query latency at k = 5 (one batch of all queries, and one query at a time), and recall
against flat: the share of flat's top-5 found in the index's top-5 (5-recall@5, the bar) and how often flat's top-1
is among them (1-recall@5, FAISS's usual figure). Also the latent storage forms of lmem/index.py (fp16, int8, PQ)
on 576-d latents: bytes per item and relative error.

Two kinds of synthetic data: isotropic (the default: every direction equally spread, the hardest case for product
quantization, since no direction can be coded more coarsely than another), and `--like SOURCE`: the mean and
covariance of real embeddings (a latent index folder's retrieval embeddings, the embed_corpus stage's file, or an
.npy array), so that the data has the spectrum real retrieval embeddings have. The source and the statistics of both
(variance spectrum, mean cosine, nearest-neighbour cosine) are printed.

A benchmark, not a test: it prints figures.
    python benchmarks/latent_storage.py                       # 1,000,000 isotropic items, 1,000 queries
    python benchmarks/latent_storage.py --like results/ci/latent_index/<compressor>-best/hotpotqa
    python benchmarks/latent_storage.py --items 100000        # a quick look
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import faiss
import numpy as np
import torch
from safetensors.numpy import load_file

from lmem.index import LatentIndex, decode_latents, encode_latents, set_nprobe


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def synthetic(n: int, mean: np.ndarray, scale: np.ndarray, topics: int, spread: float,
              rng: np.random.Generator) -> np.ndarray:
    """n unit vectors around `topics` centres: centre = mean + z @ scale, item = unit(centre + spread * z' @ scale)
    with z, z' standard normal, so centres and the noise around them both follow the covariance scale.T @ scale
    (isotropic: mean 0, scale I / sqrt(d); --like: the mean and covariance of real embeddings)."""
    centres = mean + rng.standard_normal((topics, scale.shape[0])).astype(np.float32) @ scale
    out = np.empty((n, scale.shape[1]), dtype=np.float32)
    for s in range(0, n, 100_000):  # in chunks: the noise of a million rows at once is another 2 GB
        m = min(100_000, n - s)
        noise = rng.standard_normal((m, scale.shape[0])).astype(np.float32) @ scale
        out[s:s + m] = unit(centres[rng.integers(0, topics, m)] + spread * noise)
    return out


def real_embeddings(source: str) -> np.ndarray:
    """Unit retrieval embeddings of a latent index folder, the embed_corpus stage's safetensors file or an .npy."""
    path = Path(source)
    if path.is_dir():
        x = LatentIndex.load_shards(path, json.loads((path / "ids.json").read_text())).embeddings.numpy()
    elif path.suffix == ".npy":
        x = np.load(path)
    else:
        x = load_file(str(path))["embeddings"]
    return unit(np.asarray(x, dtype=np.float32))


def fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) with scale.T @ scale the covariance of x (rows of scale: principal axes times their spread)."""
    mean = x.mean(0)
    values, vectors = np.linalg.eigh(np.cov(x - mean, rowvar=False))
    scale = np.sqrt(np.clip(values, 0, None))[:, None] * vectors.T
    return mean.astype(np.float32), scale.astype(np.float32)


def describe(x: np.ndarray, n: int = 2000) -> str:
    """Its spectrum (directions holding 90% and 99% of the variance), the mean cosine among its first n items and
    their mean cosine to their nearest other item."""
    values = np.sort(np.clip(np.linalg.eigvalsh(np.cov(x[:200_000], rowvar=False)), 0, None))[::-1]
    share = np.cumsum(values) / values.sum()
    n = min(n, len(x))
    best = np.full(n, -1.0, dtype=np.float32)
    for s in range(0, len(x), 50_000):
        sims = x[:n] @ x[s:s + 50_000].T
        own = np.arange(s, min(n, s + 50_000))
        sims[own, own - s] = -1  # not its own neighbour
        best = np.maximum(best, sims.max(1))
    return (f"90% of the variance in {int(np.searchsorted(share, 0.9)) + 1} of {x.shape[1]} directions, 99% in "
            f"{int(np.searchsorted(share, 0.99)) + 1}; mean cosine {float((x[:n] @ x[:n].T).mean()):.2f}; "
            f"nearest-neighbour cosine {float(best.mean()):.3f}")


def recall(rows: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(share of flat's top-k found, share of queries whose flat top-1 is found)."""
    k = truth.shape[1]
    return (float(np.mean([len(set(r) & set(t)) / k for r, t in zip(rows, truth)])),
            float(np.mean([t[0] in r for r, t in zip(rows, truth)])))


def make_index(d: int, spec: str):
    """The FAISS index for an index_factory string, searched by inner product; an index FAISS builds for L2 only
    (IVF-PQ with a refining second code, `IVF{nlist},PQm+r`) is built for L2, which ranks unit vectors as inner
    product does (|q - x|^2 = 2 - 2 q.x)."""
    try:
        return faiss.index_factory(d, spec, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as err:
        if "not implemented for inner product" not in str(err):
            raise
        return faiss.index_factory(d, spec, faiss.METRIC_L2)


def measure(name, index, data, queries, truth, k, nprobes=(None,), train=None):
    t0 = time.time()
    if train is not None:
        index.train(train)
    index.add(data)
    build = time.time() - t0
    nbytes = len(faiss.serialize_index(index))
    rows = None
    for nprobe in nprobes:
        if nprobe is not None:
            set_nprobe(index, nprobe)
        t0 = time.time()
        _, rows = index.search(queries, k)
        batch_ms = 1000 * (time.time() - t0) / len(queries)
        t0 = time.time()
        for q in queries[:50]:
            index.search(q[None], k)
        single_ms = 1000 * (time.time() - t0) / 50
        r5, r1 = recall(rows, truth) if truth is not None else (1.0, 1.0)
        print(f"| {name} | {nprobe or '-'} | {build:.1f} | {nbytes / 2 ** 20:.0f} | {nbytes / len(data):.1f} | "
              f"{batch_ms:.3f} | {single_ms:.2f} | {r5:.3f} | {r1:.3f} |", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=512, help="isotropic data only (--like takes the source's)")
    ap.add_argument("--like", default=None, help="fit mean and covariance to these real embeddings (see above)")
    ap.add_argument("--topics", type=int, default=20_000)
    ap.add_argument("--spread", type=float, default=1.0, help="noise around a topic centre, in the data's spread")
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--nprobe", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--index", nargs="+", default=["IVF{nlist},Flat", "IVF{nlist},PQ64", "IVF{nlist},PQ128",
                                                   "PCA256,IVF{nlist},PQ128"],
                    help="FAISS index_factory strings ({nlist} filled in): PQm is m one-byte codes per vector; PCAd "
                         "rotates onto the d directions of most variance first (cheap to train, unlike OPQ: an OPQ48 "
                         "+ IVF-PQ48 index took 504 s to build on 200,000 x 384 here)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    faiss.omp_set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    if args.like:
        real = real_embeddings(args.like)
        print(f"real embeddings: {len(real):,} x {real.shape[1]} from {args.like}: {describe(real)}")
        mean, scale = fit(real)
    else:
        mean, scale = np.zeros(args.dim, dtype=np.float32), np.eye(args.dim, dtype=np.float32) / np.sqrt(args.dim)
    d = scale.shape[1]
    data = synthetic(args.items, mean, scale, args.topics, args.spread, rng)
    picks = rng.integers(0, args.items, args.queries)
    queries = unit(data[picks] + 0.5 * args.spread * rng.standard_normal((args.queries, scale.shape[0])).astype(
        np.float32) @ scale)
    train = data[rng.choice(args.items, min(args.items, 64 * args.nlist), replace=False)]
    k = 5
    print(f"synthetic: {args.items:,} items x {d} float32 ({data.nbytes / 2 ** 30:.2f} GiB), "
          f"{'like the real embeddings' if args.like else 'isotropic'}, {args.topics:,} topics, spread "
          f"{args.spread}, made in {time.time() - t0:.1f}s: {describe(data)}")
    print(f"{args.queries} queries (an item plus half its topic's spread); k = {k}; IVF nlist {args.nlist}; "
          f"{args.threads} threads\n")
    print("| index | nprobe | build s | memory MiB | bytes/item | ms/query (batch) | ms/query (one) | "
          "recall@5 vs flat | flat top-1 in top-5 |")
    print("|---|---|---|---|---|---|---|---|---|")
    truth = measure("flat (exact inner product)", faiss.IndexFlatIP(d), data, queries, None, k)
    for spec in (template.format(nlist=args.nlist) for template in args.index):
        measure(spec, make_index(d, spec), data, queries, truth, k, args.nprobe, train)

    # the latent forms Latent Memory stores (what goes to the generator), on 20,000 latents of SmolLM2's width
    print("\n| latent storage (20,000 x 576) | bytes/item | relative error |\n|---|---|---|")
    iso = np.eye(576, dtype=np.float32) / np.sqrt(576)
    latents = torch.from_numpy(synthetic(20_000, np.zeros(576, dtype=np.float32), iso, 2_000, 1.0, rng) * 40)
    latents = latents.half()[:, None, :]
    print(f"| fp16 | {576 * 2} | 0 |")
    for storage in ("int8", "pq"):
        tensors, nbytes = encode_latents(latents, storage, 64)
        err = (decode_latents(tensors, tuple(latents.shape)).float() - latents.float()).norm() / latents.float().norm()
        print(f"| {storage} | {nbytes:.1f} | {float(err):.4f} |")


if __name__ == "__main__":
    main()
