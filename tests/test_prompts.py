import pytest

from lmem.io import InputError
from lmem.prompts import encode_text, encode_with_evidence
from lmem.records import Evidence


def ev(i, text):
    return Evidence(id=f"e{i}", text=text)


@pytest.mark.parametrize("fmt", ["paper", "fewshot"])
def test_token_counts_come_from_the_generator_ids(smollm2, base_config, fmt):
    tok, _ = smollm2
    cfg = dict(base_config["prompt"], format=fmt)
    enc = encode_text(tok, "Where is Ada?", ["Ada is in Pell.", "Bo is in Arn."], cfg)
    ids = enc.input_ids
    assert enc.tokens_full == len(ids)
    tail = tok.decode(ids[len(ids) - enc.tokens_no_system:])
    assert tail.startswith("Context 1: Ada is in Pell.") and "Question: Where is Ada?" in tail
    start = len(ids) - enc.tokens_no_system
    context = tok.decode(ids[start:start + enc.tokens_context])
    assert context == "Context 1: Ada is in Pell.\nContext 2: Bo is in Arn.\n"
    system = tok.decode(ids[:start])
    assert cfg["system"] in system
    assert ("Norrastia" in system) == (fmt == "fewshot")  # the worked example precedes the real question


def test_closed_book_has_no_context_tokens(smollm2, base_config):
    tok, _ = smollm2
    enc = encode_text(tok, "Where is Ada?", [], base_config["prompt"])
    assert enc.tokens_context == 0
    assert tok.decode(enc.input_ids[-enc.tokens_no_system:]).startswith("Question: Where is Ada?")


def test_plain_template_without_chat_template(smollm2, base_config):
    tok, _ = smollm2
    saved = tok.chat_template
    tok.chat_template = None
    try:
        enc = encode_text(tok, "Where is Ada?", ["Ada is in Pell."], base_config["prompt"])
    finally:
        tok.chat_template = saved
    text = tok.decode(enc.input_ids)
    assert text.rstrip().endswith("Question: Where is Ada?\nAnswer:")
    assert tok.decode(enc.input_ids[-enc.tokens_no_system:]).startswith("Context 1: Ada is in Pell.")


def test_too_long_drops_lowest_ranked_first_and_keeps_question(smollm2, base_config):
    tok, _ = smollm2
    ranked = [ev(i, f"Fact number {i} is about the river Velk and its many tributaries.") for i in range(30)]
    doc_pos = {e.id: 29 - i for i, e in enumerate(ranked)}  # document order is the reverse of rank
    full = encode_with_evidence(tok, "Q?", ranked, base_config["prompt"], 10_000, doc_pos)
    assert full.n_dropped == 0 and [e.id for e in full.kept] == [e.id for e in reversed(ranked)]
    cut = encode_with_evidence(tok, "Which river?", ranked, base_config["prompt"], full.tokens_full - 100, doc_pos)
    assert cut.tokens_full <= full.tokens_full - 100 and cut.n_dropped > 0
    kept = {e.id for e in cut.kept}
    assert kept == {f"e{i}" for i in range(30 - cut.n_dropped)}  # the best-ranked survive
    assert "Question: Which river?" in tok.decode(cut.input_ids)
    with pytest.raises(InputError, match="max_input_tokens"):
        encode_with_evidence(tok, "Which river? " * 50, ranked, base_config["prompt"], 40, doc_pos)


def test_compact_latent_layout_counts_one_label_and_one_position_per_latent(smollm2, base_config):
    from lmem.prompts import encode_latent

    tok, _ = smollm2
    paper = encode_latent(tok, "Who founded the museum?", 5, base_config["prompt"])
    compact_cfg = dict(base_config["prompt"], latent_layout="compact")
    compact = encode_latent(tok, "Who founded the museum?", 5, compact_cfg)
    label = len(tok("Memory:", add_special_tokens=False)["input_ids"])
    newline = len(tok("\n", add_special_tokens=False)["input_ids"])
    assert compact.n_slots == 5 and compact.slot_sizes == [1] * 5
    assert compact.tokens_context == label + 5 + newline  # "Memory:" <l1>..<l5> "\n"
    assert paper.tokens_context > 3 * compact.tokens_context
    assert compact.tokens_full - compact.tokens_context == paper.tokens_full - paper.tokens_context
    with pytest.raises(InputError, match="latent_layout"):
        encode_latent(tok, "q?", 2, dict(base_config["prompt"], latent_layout="wide"))
