import pytest

from lmem.metrics import load
from lmem.metrics.qa import (contains, exact_match, normalize_answer, precision_at_k, recall_at_k, token_f1,
                             webqa_accuracy)


@pytest.mark.parametrize("raw,expected", [
    ("The  Eiffel Tower!", "eiffel tower"),
    ("the-end", "theend"),  # official order: punctuation first, then articles (upstream code would give "end")
    ("An apple, a pear", "apple pear"),
    ("Théâtre", "théâtre"),
    ("   ", ""),
])
def test_normalize_official_order(raw, expected):
    assert normalize_answer(raw) == expected


def test_exact_match_and_f1_hand_computed():
    assert exact_match("The Paris", "paris") == 1.0
    assert exact_match("Paris France", "paris") == 0.0
    # pred tokens {paris, france}, gold {paris}: P=1/2, R=1, F1=2/3
    assert token_f1("Paris, France", "Paris") == pytest.approx(2 / 3)
    # repeated tokens count by multiplicity: pred [a1 a1 b], gold [a1 b b]: common a1:1 b:1 -> P=R=2/3
    assert token_f1("x x y", "x y y") == pytest.approx(2 / 3)
    assert token_f1("cat", "dog") == 0.0
    assert token_f1("", "dog") == 0.0


def test_yes_no_rule_from_hotpotqa_script():
    assert token_f1("yes", "yes") == 1.0
    assert token_f1("yes it is", "yes") == 0.0  # gold is special and differs from prediction
    assert token_f1("no", "no way") == 0.0
    assert token_f1("noanswer", "no answer") == 0.0


def test_max_over_references_via_evaluate_module():
    qa = load("lmem_qa")
    out = qa.compute(predictions=["Ada Quill", "in Norbridge city"], references=[["Bo", "ada quill"], ["Norbridge"]])
    assert out["per_example"]["em"] == [1.0, 0.0]
    assert out["per_example"]["f1"][1] == pytest.approx(0.5)  # P=1/3, R=1
    assert out["per_example"]["acc"] == [1.0, 1.0]
    assert out["em"] == pytest.approx(50.0)


def test_containment_is_token_aligned():
    assert contains("It is in Paris.", "paris") == 1.0
    assert contains("Parisian food", "paris") == 0.0
    assert contains("anything", "the") == 0.0  # empty after normalisation never matches


def test_retrieval_metrics():
    assert recall_at_k(["a", "b"], ["a", "c"]) == 0.5
    assert precision_at_k(["a", "b"], ["a", "c"]) == 0.5
    assert recall_at_k(["a"], []) is None
    assert precision_at_k([], ["a"]) is None
    out = load("lmem_retrieval").compute(predictions=[["a"], ["x"], ["y"]], references=[["a"], ["b"], []])
    assert out["recall_at_k"] == 0.5  # the example without gold is left out of the mean
    assert out["per_example"]["recall_at_k"] == [1.0, 0.0, None]


def test_webqa_accuracy_categories():
    assert webqa_accuracy("It is red.", "The roof is red.", "color") == 1.0
    assert webqa_accuracy("red and blue", "red", "color") == pytest.approx(2 / 3)  # F1 over colour words
    assert webqa_accuracy("Yes, it does.", "No, it does not.", "YesNo") == 0.0
    assert webqa_accuracy("There are three.", "3 dogs", "number") == 1.0
    assert webqa_accuracy("a round dome", "The dome is round", "shape") == 1.0
    # other categories: keyword recall
    assert webqa_accuracy("a fountain", "A fountain is in front", "Others") == pytest.approx(1 / 4)
    out = load("lmem_webqa").compute(predictions=["red"], references=[["blue", "red"]], qcates=["color"])
    assert out["webqa_acc"] == 100.0
