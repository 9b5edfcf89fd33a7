"""Global-corpus retrieval (lmem/corpus.py): one corpus per benchmark split, identical items stored once, gold judged
per question; BM25, dense and xRAG search it; the embed stage's file is shared by pool and global runs."""

import pytest
import torch

from lmem import baselines
from lmem.corpus import Corpus, dense_rank, embed_corpus
from lmem.specs import uses_corpus_embeddings
from lmem.encoders import DenseEncoder
from lmem.io import InputError
from lmem.records import Evidence, Example


def ex(qid, question, texts, gold=()):
    return Example(id=qid, benchmark="t", question=question, answers=["x"],
                   pool=[Evidence(id=f"s{i}", text=t, gold=i in gold) for i, t in enumerate(texts)])


SHARED = "The Velk river flows through Amberlin."
EXAMPLES = [
    ex("q1", "Which river flows through Amberlin?", [SHARED, "Bread is baked daily.", "The Orra Mountains are tall."],
       gold=(0,)),
    ex("q2", "What is baked in Norbridge?", ["Cakes are baked in Norbridge every morning.", SHARED], gold=(0,)),
    ex("q3", "Who painted the Quill portrait?", ["Ada Quill painted her own portrait.", "Cats sleep a lot."],
       gold=(0,)),
]


def test_identical_items_are_stored_once_and_gold_stays_per_question():
    corpus = Corpus.build(EXAMPLES)
    assert len(corpus.items) == 6 and corpus.texts.count(SHARED) == 1
    assert corpus.pool_rows[0][0] == corpus.pool_rows[1][1]  # q1's gold is q2's distractor: one row
    row = corpus.pool_rows[0][0]
    own = corpus.view(EXAMPLES, 0, [row])[0]
    assert (own.id, own.gold) == ("s0", True)
    seen_by_q2 = corpus.view(EXAMPLES, 1, [row])[0]
    assert (seen_by_q2.id, seen_by_q2.gold) == ("s1", False)  # q2's own copy: its id, its (non-)gold flag
    foreign = corpus.view(EXAMPLES, 2, [row])[0]
    assert (foreign.id, foreign.gold) == ("q1/s0", False)  # another question's item is never gold


def test_bm25_global_searches_every_pool(base_config):
    method = baselines.get("bm25")({"retrieval": "global"}, base_config, label="bm25_global")
    ranked = method.select(EXAMPLES, 2)
    assert ranked[0][0].id == "s0" and ranked[0][0].gold
    assert ranked[1][0].id == "s0"  # q2's cake sentence
    assert all(len(r) == 2 for r in ranked)
    ids = {e.id for r in ranked for e in r}
    assert any("/" in i for i in ids)  # some results come from other questions' pools
    pool = baselines.get("bm25")({}, base_config).select(EXAMPLES, 2)
    assert all({e.id for e in r} <= {e.id for e in x.pool} for r, x in zip(pool, EXAMPLES))
    with pytest.raises(InputError, match="retrieval must be one of"):
        baselines.get("bm25")({"retrieval": "everywhere"}, base_config).select(EXAMPLES, 2)


def test_dense_embeddings_file_is_shared_and_checked(base_config, tmp_path):
    encoder = DenseEncoder(base_config["retriever"]["model"], base_config["retriever"])
    meta = embed_corpus(EXAMPLES, encoder, tmp_path / "emb.safetensors")
    assert meta["n_items"] == 6 and meta["n_pool_items"] == 7
    for mode in ("pool", "global"):
        from_file = dense_rank(encoder, EXAMPLES, 2, mode, str(tmp_path / "emb.safetensors"))
        in_run = dense_rank(encoder, EXAMPLES, 2, mode)
        assert [[e.id for e in ev] for ev, _ in from_file] == [[e.id for e in ev] for ev, _ in in_run]
        for (_, a), (_, b) in zip(from_file, in_run):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    glob = dense_rank(encoder, EXAMPLES, 1, "global")
    assert [ev[0].id for ev, _ in glob] == ["s0", "s0", "s0"] and all(ev[0].gold for ev, _ in glob)
    with pytest.raises(InputError, match="another corpus"):
        dense_rank(encoder, EXAMPLES[:2], 2, "pool", str(tmp_path / "emb.safetensors"))


def test_which_methods_read_the_embed_stage(base_config):
    cfg = dict(base_config, projectors={"p": {}})
    assert uses_corpus_embeddings("dense", {}, cfg)
    assert uses_corpus_embeddings("dense_global", {"class": "dense", "retrieval": "global"}, cfg)
    assert uses_corpus_embeddings("xrag", {"projector": "p"}, cfg)
    assert not uses_corpus_embeddings("dense_qwen3", {"class": "dense", "model": "Qwen/Qwen3-Embedding-0.6B",
                                                      "pooling": "last"}, cfg)
    assert not uses_corpus_embeddings("xrag", {"released": True}, cfg)
    assert not uses_corpus_embeddings("bm25", {}, cfg)


def test_global_run_shows_own_items_in_document_order_then_foreign_ones(capture_generator, base_config):
    from lmem.baselines import document_order

    preds = baselines.get("bm25")({"retrieval": "global"}, base_config, label="bm25_global").run(
        EXAMPLES, capture_generator, 3)
    text = capture_generator.tokenizer.decode(capture_generator.prompts[0].input_ids)
    own = [e.text for e in EXAMPLES[0].pool if e.text in text]
    assert own and all(text.index(a) < text.index(b) for a, b in zip(own, own[1:]))  # pool order
    assert len(preds) == 3 and all(len(p.retrieved_ids) == 3 for p in preds)
    foreign = [r for p in preds for r in p.retrieved_ids if "/" in r]
    assert foreign and all(r not in p.gold_ids for p in preds for r in p.retrieved_ids if "/" in r)
    order = document_order(EXAMPLES[0], [Evidence(id="q2/s0", text="x"), EXAMPLES[0].pool[2], EXAMPLES[0].pool[0]])
    assert sorted(order, key=order.get) == ["s0", "s1", "s2", "q2/s0"]
