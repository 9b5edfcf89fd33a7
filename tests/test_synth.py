import pytest

from lmem.data import load_examples
from lmem.data.synth import generate_records
from lmem.metrics.qa import normalize_answer


def synth(split, **params):
    return load_examples("synth", {"loader": "hotpotqa",
                                   "source": {"synth": {"seed": 3, "split": split, "n_train": 60, "n_dev": 10,
                                                        "n_test": 30, **params}}}).examples


def test_seeded_and_deterministic():
    assert [e.to_dict() for e in synth("test")] == [e.to_dict() for e in synth("test")]
    other = load_examples("synth", {"loader": "hotpotqa", "source": {"synth": {"seed": 4, "split": "test"}}})
    assert other.examples[0].question != synth("test")[0].question


def test_splits_are_sized_and_disjoint():
    train, dev, test = synth("train"), synth("dev"), synth("test")
    assert (len(train), len(dev), len(test)) == (60, 10, 30)
    questions = [{e.question for e in s} for s in (train, dev, test)]
    assert not (questions[0] & questions[1]) and not (questions[0] & questions[2]) and not (questions[1] & questions[2])


def test_pools_hold_gold_lookalikes_and_answer():
    for ex in synth("test"):
        assert 30 <= len(ex.pool) <= 40
        gold = [e for e in ex.pool if e.gold]
        assert 2 <= len(gold) <= 3
        # the answer is stated by a gold sentence, and never given away by the question
        assert any(ex.answers[0] in e.text for e in gold)
        assert normalize_answer(ex.answers[0]) not in normalize_answer(ex.question)
        # distractors include look-alike entities (a shared surname or company stem)
        names = [t for t in {e.title for e in ex.pool}]
        words = [w for n in names for w in n.split()]
        assert len(words) > len(set(words))


def test_records_are_hotpotqa_schema():
    _, rec = next(generate_records({"seed": 0, "split": "test"}))
    assert set(rec) == {"id", "question", "answer", "type", "level", "supporting_facts", "context"}
    assert set(rec["context"]) == {"title", "sentences"}


def test_test_evidence_is_never_training_evidence():
    """Each split has its own people and companies: no test pool shares a sentence or a named entity (a title, a
    surname, a company stem) with any training or dev pool; only the city names (answers) are shared."""
    train, dev, test = synth("train"), synth("dev"), synth("test")

    def sentences(split):
        return {e.text for ex in split for e in ex.pool}

    def names(split):
        return {w for ex in split for e in ex.pool for w in e.title.split()}

    cities = {ex.answers[0] for ex in train + dev + test}
    assert not sentences(test) & (sentences(train) | sentences(dev))
    assert not sentences(dev) & sentences(train)
    words = (names(train) | names(dev)) & names(test)
    assert words <= {"Instruments", "Logistics", "Textiles", "Foundry", "Press", "Optics", "Brewery", "Shipyards",
                     "Pharmacy", "Aerials"} - cities, words  # only the industry suffixes of company names


def test_question_mix_follows_the_config():
    """bridge_fraction sets the mix (default 0.8, HotpotQA's ~4:1), in every split, also after a large train."""
    for split, n in (("train", 60), ("test", 30)):
        types = [ex.metadata["type"] for ex in synth(split)]
        assert len(types) == n and 0.6 <= types.count("bridge") / n <= 0.95
    big = load_examples("synth", {"loader": "hotpotqa", "source": {"synth": {
        "seed": 0, "split": "test", "n_train": 2000, "n_dev": 200, "n_test": 200}}}).examples
    assert 0.7 <= sum(ex.metadata["type"] == "bridge" for ex in big) / 200 <= 0.9
    only = [ex.metadata["type"] for ex in synth("test", bridge_fraction=0.0)]
    assert set(only) == {"comparison"}


def test_single_hop_share_is_one_fact_lookups():
    """single_fraction adds one-hop questions whose single gold sentence holds the answer; without it the data is
    exactly what it was (no extra random draws)."""
    mixed = synth("test", single_fraction=0.5)
    single = [ex for ex in mixed if ex.metadata["type"] == "single"]
    assert 0.3 <= len(single) / len(mixed) <= 0.7
    for ex in single:
        (gold,) = [e for e in ex.pool if e.id in ex.gold_ids]
        assert ex.answers[0] in gold.text and gold.title in ex.question
    assert [ex.question for ex in synth("test")] == [ex.question for ex in synth("test", single_fraction=0.0)]
    with pytest.raises(ValueError, match="single_fraction"):
        synth("test", single_fraction=1.5)
