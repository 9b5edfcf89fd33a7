import pytest

from lmem import baselines
from lmem.baselines import top_k
from lmem.data import load_examples
from lmem.records import Evidence, Example


def example(pool_texts, gold=(), question="Which river flows through Amberlin?"):
    pool = [Evidence(id=f"s{i}", text=t, gold=i in gold) for i, t in enumerate(pool_texts)]
    return Example(id="x", benchmark="t", question=question, answers=["Velk"], pool=pool)


POOL = ["The Orra Mountains are tall.", "Amberlin lies on the banks of the Velk river.",
        "A cat sleeps on the mat.", "The river Velk flows through Amberlin in the north.", "Bread is baked daily."]


def test_registry_discovers_the_five_baselines():
    reg = baselines.discover()
    assert {"closed_book", "full_context", "oracle", "bm25", "dense"} <= set(reg)
    assert not reg["closed_book"].uses_k and reg["bm25"].uses_k
    with pytest.raises(Exception, match="unknown method 'nope'"):
        baselines.get("nope")


def test_a_second_method_class_under_a_taken_name_is_refused():
    """Registering a class under an existing name used to replace the first silently; now it is an error naming
    both, and a subclass that names nothing of its own does not take its parent's place."""
    reg = baselines.discover()
    bm25 = reg["bm25"]
    with pytest.raises(ValueError, match=r"two method classes are named 'bm25': baselines\.bm25\.BM25 and "):
        class AnotherBM25(baselines.TextEvidenceBaseline):
            name = "bm25"

    class Tuned(bm25):
        pass

    assert reg["bm25"] is bm25 and Tuned not in reg.values()


def test_top_k_is_deterministic_on_ties():
    assert top_k([1.0, 3.0, 3.0, 0.5], 2) == [1, 2]
    assert top_k([0.0, 0.0, 0.0], 2) == [0, 1]


def test_selection_baselines(base_config):
    ex = example(POOL, gold=(3,))

    def get(name):
        return baselines.get(name)(base_config["methods"].get(name, {}), base_config)

    assert get("closed_book").select([ex], None) == [[]]
    assert [e.id for e in get("full_context").select([ex], None)[0]] == [f"s{i}" for i in range(5)]
    assert [e.id for e in get("oracle").select([ex], None)[0]] == ["s3"]
    bm25 = [e.id for e in get("bm25").select([ex], 2)[0]]
    assert set(bm25) == {"s1", "s3"}
    dense = [e.id for e in baselines.get("dense")({}, base_config).select([ex], 2)[0]]
    assert set(dense) == {"s1", "s3"}
    assert get("bm25").select([example([])], 3) == [[]]


def test_dense_recall_on_synth_beats_chance(base_config):
    exs = load_examples("synth", {"loader": "hotpotqa", "source": {"synth": {"seed": 0, "n_test": 20}}}).examples
    dense = baselines.get("dense")({}, base_config).select(exs, 5)
    recall = sum(len({e.id for e in sel} & set(ex.gold_ids)) / len(ex.gold_ids) for ex, sel in zip(exs, dense))
    assert recall / len(exs) > 0.4  # chance at k=5 of ~36 is ~0.14


def test_run_puts_retrieved_text_back_in_document_order(capture_generator, base_config):
    ex = example(POOL, gold=(3,))
    gen = capture_generator
    (pred,) = baselines.get("bm25")({}, base_config).run([ex], gen, 2)
    text = gen.tokenizer.decode(gen.prompts[0].input_ids)
    assert text.index("Amberlin lies") < text.index("The river Velk flows")  # document order, not rank order
    assert pred.k == "2" and pred.prediction == "Velk" and set(pred.retrieved_ids) == {"s1", "s3"}
    assert pred.tokens_context > 0 and pred.gold_ids == ["s3"]


def test_dense_last_token_pooling_with_a_tiny_qwen3(tmp_path, smollm2, base_config):
    """Plumbing of the Qwen3-Embedding baseline (GPU profiles) with a tiny random Qwen3: last-token pooling does
    not depend on the padding side, and the query instruction reaches the encoder."""
    import torch
    from transformers import Qwen3Config, Qwen3Model

    from lmem.encoders import DenseEncoder

    tok, _ = smollm2
    cfg = Qwen3Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=256)
    torch.manual_seed(0)
    Qwen3Model(cfg).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    enc = DenseEncoder(str(tmp_path), base_config["retriever"], pooling="last", query_instruction="Query: ")
    texts = ["a short one", "a much longer sentence than the first one is"]
    enc.tokenizer.padding_side = "left"
    left = enc.encode(texts)
    enc.tokenizer.padding_side = "right"
    right = enc.encode(texts)
    assert torch.allclose(left, right, atol=1e-5)
    assert torch.allclose(enc.encode_queries(["x"]), enc.encode(["Query: x"]))
    spec = {"model": str(tmp_path), "pooling": "last", "query_instruction": "Query: "}
    method = baselines.get("dense")(spec, {"prompt": base_config["prompt"], "retriever": base_config["retriever"]})
    (chosen,) = method.select([example(POOL, gold=(1, 3))], 2)
    assert len(chosen) == 2 and method.models["retriever"].startswith(str(tmp_path))


def test_autocompressor_without_its_model_code_is_a_skip(base_config):
    """AutoCompressor's model class lives in its authors' repository (flash-attn, CUDA): absent, a clear skip."""
    method = baselines.get("autocompressor")({}, {"prompt": base_config["prompt"],
                                                 "generator": base_config["generator"]})
    with pytest.raises(baselines.MethodUnavailable, match="princeton-nlp/AutoCompressors"):
        method.run([example(POOL)], None, None)


def test_shuffled_memory_partners_are_a_seeded_derangement():
    from lmem.baselines import shuffled_partners

    p = shuffled_partners(50, seed=0)
    assert sorted(p) == list(range(50)) and all(j != i for i, j in enumerate(p))
    assert p == shuffled_partners(50, seed=0) and p != shuffled_partners(50, seed=1)
    assert shuffled_partners(2, seed=3) == [1, 0]
    with pytest.raises(Exception, match="at least 2 questions"):
        shuffled_partners(1, seed=0)
