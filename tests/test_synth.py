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
