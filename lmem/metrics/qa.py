"""QA and retrieval metrics, each equal to its benchmark's official script (docs/metrics.md).

Normalisation follows the official SQuAD v1.1 / HotpotQA scripts in their order: lowercase, remove punctuation,
remove the articles a/an/the, squeeze whitespace. Two F1 rules exist:
- `squad` (SQuAD v1.1 `evaluate-v1.1.py`; NQ, TriviaQA, MuSiQue, Qasper, WiCE): plain token F1;
- `hotpotqa` (`hotpot_evaluate_v1.py`; HotpotQA and, with the answer's aliases as references, 2WikiMultihopQA's
  `2wikimultihop_evaluate_v1.1.py`): a yes/no/noanswer on one side that differs from the other side scores 0.
Scores are the max over a question's references (SQuAD's `metric_max_over_ground_truths`, 2Wiki's alias loop); a
question without references is an error, as in the official scripts.
"""

from __future__ import annotations

import re
import string
from collections import Counter

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_SPECIAL = ("yes", "no", "noanswer")


def normalize_answer(s: str) -> str:
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str, yes_no_rule: bool = True) -> float:
    """Token F1; `yes_no_rule` is HotpotQA's (a differing yes/no/noanswer scores 0), off for SQuAD's."""
    p, g = normalize_answer(prediction), normalize_answer(gold)
    if yes_no_rule and (p in _SPECIAL or g in _SPECIAL) and p != g:
        return 0.0
    p_toks, g_toks = p.split(), g.split()
    common = Counter(p_toks) & Counter(g_toks)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p_toks), same / len(g_toks)
    return 2 * precision * recall / (precision + recall)


def contains(prediction: str, gold: str) -> float:
    """Answer-containment accuracy: the normalised gold appears in the normalised prediction (whole tokens)."""
    g = normalize_answer(gold)
    return float(bool(g) and f" {g} " in f" {normalize_answer(prediction)} ")


def squad_f1(prediction: str, gold: str) -> float:
    return token_f1(prediction, gold, yes_no_rule=False)


def best_over_references(fn, prediction: str, answers: list[str]) -> float:
    if not answers:
        raise ValueError(f"no reference answers to score {prediction!r} against (the official scripts raise too)")
    return max(fn(prediction, a) for a in answers)


# The answer metrics a benchmark can name (`metric:` in its config entry): name -> (EM, F1).
F1_RULES = {"hotpotqa": token_f1, "2wikimultihopqa": token_f1, "squad": squad_f1, "webqa": squad_f1}
# The metric of a benchmark whose config names none, by loader (every other loader is scored by SQuAD's rules).
DEFAULT_METRIC = {"hotpotqa": "hotpotqa", "2wikimultihopqa": "2wikimultihopqa", "webqa": "webqa"}


def metric_for(spec: dict) -> str:
    """The answer metric of a benchmark config entry: its `metric`, else its loader's default, else `squad`."""
    name = spec.get("metric") or DEFAULT_METRIC.get(spec.get("loader", ""), "squad")
    if name not in F1_RULES:
        raise ValueError(f"unknown metric {name!r}; known: {sorted(F1_RULES)}")
    return name


def mean_f1(predictions: list[str], references: list[list[str]], metric: str = "hotpotqa") -> float:
    """Token F1 (best over each question's references) averaged over the questions, in points (0-100)."""
    if not predictions:
        raise ValueError("mean F1 of no predictions")
    f1 = F1_RULES[metric]
    return 100 * sum(best_over_references(f1, p, r) for p, r in zip(predictions, references)) / len(predictions)


def recall_at_k(retrieved: list[str], gold: list[str], gold_sets: list[list[str]] | None = None) -> float | None:
    """Share of gold items among the retrieved; None where the example has no gold (recall not defined). Where the
    benchmark gives alternative complete gold sets (WiCE's `supporting_sentences`), the best set's recall."""
    if gold_sets:
        return max(len(set(retrieved) & set(s)) / len(set(s)) for s in gold_sets if s)
    if not gold:
        return None
    return len(set(retrieved) & set(gold)) / len(set(gold))


def precision_at_k(retrieved: list[str], gold: list[str]) -> float | None:
    if not gold or not retrieved:
        return None
    return len(set(retrieved) & set(gold)) / len(set(retrieved))


