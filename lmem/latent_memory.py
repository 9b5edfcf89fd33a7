"""Latent-memory QA (docs/method.md section 4): query -> `query` adapter -> top-k latents of the pool (cosine) ->
projected latents in the generator prompt, in rank order -> batched greedy generation from input embeddings."""

from __future__ import annotations

import torch

from lmem.baselines import foreign, top_k
from lmem.corpus import Corpus
from lmem.index import item_key
from lmem.prompts import LatentPrompt, encode_latent
from lmem.records import Evidence, Example


@torch.no_grad()
def embed_questions(compressor, questions: list[str], batch_size: int = 32) -> torch.Tensor:
    out = []
    ids = compressor.tokenize(questions, compressor.cfg.max_query_tokens)
    for s in range(0, len(ids), batch_size):
        out.append(compressor.embed_query(ids[s:s + batch_size]).float().cpu())
    return torch.cat(out) if out else torch.zeros((0, compressor.cfg.retrieval_dim))


@torch.no_grad()
def compress_evidence(compressor, evidence: list[Evidence], batch_size: int = 32) -> torch.Tensor:
    """(n, T, H) latents of evidence items (text, or images through the compressor's vision module), batched and
    sorted by length (the result keeps the input order)."""
    ids, prefixes = compressor.evidence_inputs(evidence)
    lengths = [len(t) + (0 if p is None else p.shape[0]) for t, p in zip(ids, prefixes)]
    order = sorted(range(len(ids)), key=lambda i: (lengths[i], i))
    out = torch.zeros((len(ids), compressor.cfg.num_mem_tokens, compressor.mem.shape[1]))
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        out[idx] = compressor.compress([ids[i] for i in idx], [prefixes[i] for i in idx]).float().cpu()
    return out


def pool_retriever(compressor, examples: list[Example], latents: list[torch.Tensor],
                   embeddings: list[torch.Tensor] | None = None):
    """Per-question retrieval within each example's own pool; latents[i]: (len(pool), T, H)."""
    def retrieve(i: int, query: torch.Tensor, k: int) -> tuple[list[Evidence], torch.Tensor]:
        pool = examples[i].pool
        if not pool:
            return [], latents[i][:0]
        emb = (embeddings[i] if embeddings is not None
               else compressor.retrieval_embedding(latents[i].to(compressor.device)).cpu())
        best = top_k((emb.float() @ query).tolist(), k)
        return [pool[j] for j in best], latents[i][best]

    return retrieve


@torch.no_grad()
def answer(compressor, generator, examples: list[Example], retrieve, k: int, prompt_cfg: dict,
           desc: str = "latent_memory", memory_of: list[int] | None = None
           ) -> tuple[list[str], list[list[Evidence]], list[LatentPrompt]]:
    """Answer each example from its top-k latents; `retrieve(i, query_embedding, k)` returns the retrieved
    evidence (rank order) and their latents (k, T, H). Returns answers, retrieved evidence and the prompts
    (with their token counts). `memory_of[i] = j` (the shuffled-memory control): question i is answered from
    what question j retrieves, so the answers show what the generator says from a trained memory that does not
    hold the evidence."""
    queries = embed_questions(compressor, [ex.question for ex in examples])
    prompts, projected, retrieved = [], [], []
    T = compressor.cfg.num_mem_tokens
    for i, ex in enumerate(examples):
        j = i if memory_of is None else memory_of[i]
        evidence, lat = retrieve(j, queries[j], k)
        if j != i:
            evidence = foreign(examples[j], evidence)
        prompt = encode_latent(generator.tokenizer, ex.question, len(evidence), prompt_cfg, T)
        prompt.kept = evidence
        prompts.append(prompt)
        retrieved.append(evidence)
        projected.append(compressor.project(lat.float().to(compressor.device)).reshape(len(evidence) * T, -1))
    return generator.generate_latent(prompts, projected, desc=desc), retrieved, prompts


def global_retriever(examples: list[Example], index):
    """One memory over every evidence item of the benchmark (lmem/corpus.py): each distinct item is retrieved
    once, as the question's own pool item where it is one, else as another question's, never gold. The index
    keeps a row per pool item; the search goes deep enough to return k distinct items."""
    corpus = Corpus.build(examples)
    position = {item_key(ex.id, e.id): (i, j) for i, ex in enumerate(examples) for j, e in enumerate(ex.pool)}
    corpus_row = []
    for key in index.keys:
        i, j = position[key]
        corpus_row.append(corpus.pool_rows[i][j])
    depth = min(len(index.keys), max((len(o) for o in corpus.owners), default=1))

    def retrieve(i, query, k):
        rows, seen = [], set()
        for r in index.search(query.numpy()[None], min(len(index.keys), k * depth))[0]:
            if r >= 0 and corpus_row[r] not in seen and len(rows) < k:
                seen.add(corpus_row[r])
                rows.append(int(r))
        return corpus.view(examples, i, [corpus_row[r] for r in rows]), index.latents[rows]

    return retrieve
