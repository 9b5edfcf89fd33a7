"""The corpus of a benchmark split and global-corpus retrieval (`retrieval: global` on every retrieving method).

A corpus holds every evidence item of every question's pool, identical items (same kind, text, title and image)
stored once, in first-occurrence order. A question searches all of it; a corpus item that is in the question's own
pool is that pool's item (its id, its gold flag), any other comes back as `<owner question id>/<evidence id>` and is
never gold, so recall@k and precision@k stay per question.

Stage `embed` (rule `embed_corpus`): the dense retriever's embeddings of a corpus, computed once and shared by every
k and every method that ranks with that retriever (dense and xRAG, pool and global mode alike).
Usage: python -m lmem.corpus --data DATA.jsonl --spec JSON --out EMB.safetensors [--threads N]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import faiss
import numpy as np
import torch
from safetensors.torch import load_file, save_file

from lmem.encoders import DenseEncoder
from lmem.io import InputError, atomic_path, sha256_json, write_json
from lmem.prepare import read_examples
from lmem.records import Evidence, Example
from lmem.stage import parse_spec, setup

log = logging.getLogger("lmem.corpus")
RETRIEVAL_MODES = ("pool", "global")


def retrieval_mode(spec: dict, label: str) -> str:
    mode = spec.get("retrieval", "pool")
    if mode not in RETRIEVAL_MODES:
        raise InputError(f"method {label}: retrieval must be one of {RETRIEVAL_MODES}, got {mode!r}")
    return mode


def identity(e: Evidence) -> tuple:
    return (e.kind, e.text, e.title, e.image)


@dataclass
class Corpus:
    items: list[Evidence]  # one per distinct item, first occurrence
    owners: list[list[tuple[int, int]]]  # per item: (example index, pool index) of every occurrence
    pool_rows: list[list[int]]  # per example: the corpus row of each pool item

    @classmethod
    def build(cls, examples: list[Example]) -> "Corpus":
        row_of: dict[tuple, int] = {}
        items, owners, pool_rows = [], [], []
        for i, ex in enumerate(examples):
            rows = []
            for j, e in enumerate(ex.pool):
                key = identity(e)
                if key not in row_of:
                    row_of[key] = len(items)
                    items.append(e)
                    owners.append([])
                owners[row_of[key]].append((i, j))
                rows.append(row_of[key])
            pool_rows.append(rows)
        return cls(items, owners, pool_rows)

    @property
    def texts(self) -> list[str]:
        return [e.search_text for e in self.items]

    def fingerprint(self) -> str:
        return sha256_json(self.texts)

    def view(self, examples: list[Example], i: int, rows) -> list[Evidence]:
        """Corpus rows (best first) as question i sees them (see the module docstring)."""
        out = []
        for r in rows:
            r = int(r)
            own = next((j for ei, j in self.owners[r] if ei == i), None)
            if own is not None:
                out.append(examples[i].pool[own])
            else:
                ei, j = self.owners[r][0]
                e = examples[ei].pool[j]
                out.append(replace(e, id=f"{examples[ei].id}/{e.id}", gold=False))
        return out


def flat_search(embeddings: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """(Q, k) rows by exact inner product (FAISS flat; cosine on unit vectors), best first."""
    index = faiss.IndexFlatIP(embeddings.shape[1])
    index.add(np.ascontiguousarray(embeddings, dtype=np.float32))
    _, rows = index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, len(embeddings)))
    return rows


def embed_corpus(examples: list[Example], encoder, out: str | Path) -> dict:
    corpus = Corpus.build(examples)
    t0 = time.time()
    emb = encoder.encode(corpus.texts) if corpus.items else torch.zeros((0, 1))
    with atomic_path(out) as tmp:
        save_file({"embeddings": emb.contiguous()}, str(tmp))
    meta = {"n_items": len(corpus.items), "n_pool_items": sum(len(r) for r in corpus.pool_rows),
            "dim": int(emb.shape[1]), "retriever": encoder.resolved.tag, "corpus_sha256": corpus.fingerprint(),
            "seconds": round(time.time() - t0, 2)}
    write_json(str(out) + ".meta.json", meta)
    return meta


def load_embeddings(path: str | Path, corpus: Corpus, retriever_tag: str) -> torch.Tensor:
    """Embeddings from the embed stage, checked against the corpus and retriever they are used with."""
    meta = json.loads(Path(str(path) + ".meta.json").read_text())
    if meta["corpus_sha256"] != corpus.fingerprint() or meta["retriever"] != retriever_tag:
        raise InputError(f"{path}: embeddings of another corpus or retriever ({meta['retriever']}); rerun the "
                         f"embed_corpus job for this data")
    return load_file(str(path))["embeddings"]


def dense_rank(encoder, examples: list[Example], k: int, mode: str, embeddings_path: str | None = None
               ) -> list[tuple[list[Evidence], torch.Tensor]]:
    """Per question: its top-k evidence by cosine to the question (best first, as the question sees it) and their
    embeddings, from its own pool (`pool`) or the whole corpus (`global`). The corpus is encoded once (or read from
    the embed stage's file)."""
    corpus = Corpus.build(examples)
    emb = (load_embeddings(embeddings_path, corpus, encoder.resolved.tag) if embeddings_path
           else encoder.encode(corpus.texts))
    if mode == "global":
        queries = encoder.encode_queries([ex.question for ex in examples])
        unit = torch.nn.functional.normalize(emb, dim=-1) if not encoder.normalize else emb
        rows = flat_search(unit.numpy(), torch.nn.functional.normalize(queries, dim=-1).numpy(), k)
        return [(corpus.view(examples, i, r), emb[torch.as_tensor(r, dtype=torch.long)]) for i, r in enumerate(rows)]
    ranked = encoder.rank_pools(examples, k, [emb[rows] for rows in corpus.pool_rows])
    return [([ex.pool[b] for b in best], pool[best]) for ex, (best, pool) in zip(examples, ranked)]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--spec", required=True, help="the run's retriever section (model, batch_size, max_length)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    setup(args.threads)
    retriever = parse_spec(args.spec)
    meta = embed_corpus(read_examples(args.data), DenseEncoder(retriever["model"], retriever), args.out)
    log.info("embedded %d distinct items (%d in pools) in %.1fs", meta["n_items"], meta["n_pool_items"],
             meta["seconds"])


if __name__ == "__main__":
    main()
