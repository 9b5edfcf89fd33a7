"""LLMLingua-2 through the `llmlingua` package: plumbing with a small randomly initialised token classifier (never
for numbers), and the offline case, where the paper model is absent: a clear skip, not a crash."""

import pytest

from lmem import baselines
from lmem.baselines import MethodUnavailable
from lmem.data import load_examples


@pytest.fixture
def offline_tiktoken(monkeypatch):
    """llmlingua builds tiktoken's gpt-3.5 encoding, downloaded on first use; offline, a byte-level stand-in (it
    only weighs words for the rate target)."""
    import tiktoken

    enc = tiktoken.Encoding(name="bytes", pat_str=r"\S+|\s+", mergeable_ranks={bytes([i]): i for i in range(256)},
                            special_tokens={})
    monkeypatch.setattr(tiktoken, "encoding_for_model", lambda name: enc)


@pytest.fixture(scope="session")
def tiny_token_classifier(tmp_path_factory):
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForTokenClassification

    from lmem.models import resolve

    tok = AutoTokenizer.from_pretrained(str(resolve("sentence-transformers/all-MiniLM-L6-v2").path))
    # llmlingua picks its word-merging rule from the model name: this one is WordPiece, as bert-base-multilingual
    path = tmp_path_factory.mktemp("models") / "tiny-bert-base-multilingual-cased"
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, num_labels=2, max_position_embeddings=512)
    torch.manual_seed(0)
    BertForTokenClassification(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def examples(n=3):
    return load_examples("synth", {"loader": "hotpotqa", "source": {"synth": {"seed": 2, "n_test": n}}}).examples


def test_compresses_full_context_at_the_rate(tiny_llama, base_config, tiny_token_classifier, offline_tiktoken):
    from lmem.generator import Generator

    gen = Generator(dict(base_config["generator"], model=tiny_llama, max_new_tokens=4))
    config = {"prompt": base_config["prompt"], "retriever": base_config["retriever"]}
    exs = examples()
    full = baselines.get("full_context")({}, config).run(exs, gen, None)
    rows = {}
    for rate in (0.5, 0.2):
        method = baselines.get("llmlingua2")({"rate": rate, "model": tiny_token_classifier}, config, f"ll{rate}")
        rows[rate] = method.run(exs, gen, None)
        assert method.models["llmlingua2"].startswith(tiny_token_classifier)
    for f, half, fifth in zip(full, rows[0.5], rows[0.2]):
        assert 0 < fifth.tokens_context < half.tokens_context < f.tokens_context
        assert half.retrieved_ids == f.retrieved_ids  # the whole pool is compressed
        assert fifth.k == "all" and fifth.method == "ll0.2"


def test_bad_rate_is_a_clear_error(base_config):
    method = baselines.get("llmlingua2")({"rate": 2}, {"prompt": base_config["prompt"]}, "ll")
    with pytest.raises(ValueError, match="rate must be in"):
        method.run(examples(1), None, None)


def test_offline_without_the_paper_model_is_a_skip(base_config, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    method = baselines.get("llmlingua2")({"rate": 0.1}, {"prompt": base_config["prompt"]}, "ll")
    with pytest.raises(MethodUnavailable, match="llmlingua-2-xlm-roberta-large-meetingbank"):
        method.run(examples(1), None, None)
