"""QA and retrieval metrics per METHOD.md section 6.

Normalisation follows the official SQuAD v1.1 / HotpotQA scripts in their order: lowercase, remove punctuation,
remove the articles a/an/the, squeeze whitespace. F1 follows the HotpotQA script: a yes/no/noanswer on one side
that differs from the other side scores 0.
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


def token_f1(prediction: str, gold: str) -> float:
    p, g = normalize_answer(prediction), normalize_answer(gold)
    if (p in _SPECIAL or g in _SPECIAL) and p != g:
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


def best_over_references(fn, prediction: str, answers: list[str]) -> float:
    return max((fn(prediction, a) for a in answers), default=0.0)


def mean_f1(predictions: list[str], references: list[list[str]]) -> float:
    """Token F1 (best over each question's references) averaged over the questions, in points (0-100)."""
    if not predictions:
        raise ValueError("mean F1 of no predictions")
    return 100 * sum(best_over_references(token_f1, p, r) for p, r in zip(predictions, references)) / len(predictions)


def recall_at_k(retrieved: list[str], gold: list[str]) -> float | None:
    """Share of gold items among the retrieved; None where the example has no gold (recall not defined)."""
    if not gold:
        return None
    return len(set(retrieved) & set(gold)) / len(set(gold))


def precision_at_k(retrieved: list[str], gold: list[str]) -> float | None:
    if not gold or not retrieved:
        return None
    return len(set(retrieved) & set(gold)) / len(set(retrieved))


# WebQA's official accuracy (the WebQA authors' val approximation of the leaderboard's QA-Acc):
# F1 over the category vocabulary for color/shape/YesNo, over numbers for number, keyword recall for the rest.
COLOR_SET = frozenset("""orangebrown spot yellow blue rainbow ivory brown gray teal bluewhite orangepurple black
white gold redorange pink blonde tan turquoise grey beige golden orange bronze maroon purple bluere red rust violet
transparent yes silver chrome green aqua""".split())
SHAPE_SET = frozenset("""globular octogon ring hoop octagon concave flat wavy shamrock cross cylinder cylindrical
pentagon point pyramidal crescent rectangular hook tube cone bell spiral ball convex square arch h cuboid step
rectangle dot oval circle star crosse crest octagonal cube triangle semicircle domeshape obelisk corkscrew curve
circular xs slope pyramid round bow straight triangular heart fork teardrop fold curl spherical diamond keyhole
conical dome sphere bellshaped rounded hexagon flower globe torus""".split())
YESNO_SET = frozenset({"yes", "no"})
_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}


def _numbers(tokens: list[str]) -> list[str]:
    out = []
    for t in tokens:
        t = _NUMBER_WORDS.get(t, t)
        try:
            out.append(str(int(float(t))) if float(t).is_integer() else str(float(t)))
        except ValueError:
            pass
    return out


def webqa_accuracy(prediction: str, gold: str, qcate: str) -> float:
    pred, target = normalize_answer(prediction).split(), normalize_answer(gold).split()
    domain = {"color": COLOR_SET, "shape": SHAPE_SET, "YesNo": YESNO_SET}.get(qcate)
    if qcate == "number":
        pred, target = _numbers(pred), _numbers(target)
    elif domain is not None:
        pred, target = [w for w in pred if w in domain], [w for w in target if w in domain]
    same = sum((Counter(target) & Counter(pred)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(target)
    f1 = 2 * precision * recall / (precision + recall)
    return f1 if qcate in ("color", "shape", "number", "YesNo") else recall
