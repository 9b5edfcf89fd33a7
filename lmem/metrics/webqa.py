"""WebQA's accuracy on the val split, as its authors define it (docs/metrics.md, "WebQA").

The leaderboard script (WebQnA/WebQA_Baseline `vlp/eval_1022.py`) scores against hidden `Keywords_A`; for the val
split the WebQA authors give an approximation (WebQnA/WebQA `eval_webqa.md`, `webqa_metrics_approx`) that scores
against the full answer with eval_1022's normalisation. This module is that approximation:

- normalise both sides: lowercase; drop punctuation but keep a `.` that starts a decimal (`1.5`); drop the articles
  a/an/the unless the text is one word; turn each number word into digits (`thirty` -> `30`, `hundred` -> `100`,
  through `word2number`, the library the official script uses); lemmatise every word; a one-character text is only
  lowercased and number-read;
- color / shape / YesNo questions keep the words of the category's vocabulary, as a *set* (`red and red` is `red`);
  number questions keep the words that are integers (`1.5` is not one, as in the official code);
- accuracy is F1 of the kept words for color / shape / number / YesNo and recall of the answer's words for the other
  categories (text, choose, Others).

Lemmas: the official code runs spaCy's `en_core_web_sm` (a tagger and rule lemmatiser, not on PyPI). lmem uses
`simplemma` (a dictionary lemmatiser, pure Python), which gives the same lemma for the words WebQA's answers use
(plurals, verb forms, `mice` -> `mouse`); where the two differ, `tests/fixtures/metrics/webqa.jsonl` lists the pair
as a documented exception.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from functools import lru_cache

import simplemma
from word2number import w2n

COLOR_SET = frozenset("""orangebrown spot yellow blue rainbow ivory brown gray teal bluewhite orangepurple black
white gold redorange pink blonde tan turquoise grey beige golden orange bronze maroon purple bluere red rust violet
transparent yes silver chrome green aqua""".split())
SHAPE_SET = frozenset("""globular octogon ring hoop octagon concave flat wavy shamrock cross cylinder cylindrical
pentagon point pyramidal crescent rectangular hook tube cone bell spiral ball convex square arch h cuboid step
rectangle dot oval circle star crosse crest octagonal cube triangle semicircle domeshape obelisk corkscrew curve
circular xs slope pyramid round bow straight triangular heart fork teardrop fold curl spherical diamond keyhole
conical dome sphere bellshaped rounded hexagon flower globe torus""".split())
YESNO_SET = frozenset({"yes", "no"})
DOMAINS = {"color": COLOR_SET, "shape": SHAPE_SET, "YesNo": YESNO_SET}
F1_CATEGORIES = ("color", "shape", "number", "YesNo")  # the others (text, choose, Others) score recall

_PUNCT = set(string.punctuation) - {"."}
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_DOT_NOT_DECIMAL = re.compile(r"\.(?!\d)")
# spaCy's English tokenizer splits a unit off a number (`56kg` -> `56 kg`, `100m` -> `100 m`); the official script's
# lemmatiser sees those tokens, so its number questions count the `56`. The lowercase units of spaCy's list:
_UNITS = "km|m|dm|cm|mm|ha|µm|nm|yd|in|ft|kg|g|mg|µg|t|lb|oz|kmh|mph|mbar|mb|kb|gb|tb"
_NUMBER_UNIT = re.compile(rf"^(\d+(?:\.\d+)?)({_UNITS})$")


@lru_cache(maxsize=65536)
def _number(word: str) -> str:
    """A number word or numeral as digits (`thirty` -> `30`), anything else unchanged; `point` stays a word."""
    if word == "point":
        return word
    try:
        return str(w2n.word_to_num(word))
    except (ValueError, IndexError, KeyError, TypeError):
        return word


@lru_cache(maxsize=65536)
def _lemma(word: str) -> str:
    return simplemma.lemmatize(word, lang="en")


def normalize_text(s: str) -> str:
    """WebQA's eval_1022 `normalize_text`, with simplemma lemmas (see the module docstring)."""
    if len(s.strip()) == 1:
        return " ".join(_number(w) for w in s.lower().split())
    text = "".join(ch for ch in s.lower() if ch not in _PUNCT)
    text = _DOT_NOT_DECIMAL.sub("", text)
    if len(s.strip().split()) != 1:
        text = _ARTICLES.sub(" ", text)
    words = []
    for w in text.split():
        w = _number(w)
        unit = _NUMBER_UNIT.match(w)
        words.extend(unit.groups() if unit else [_lemma(w)])
    return " ".join(words)


def _integers(words: list[str]) -> list[str]:
    out = []
    for w in words:
        try:
            out.append(str(int(w)))
        except ValueError:
            pass
    return out


def webqa_accuracy(prediction: str, gold: str, qcate: str) -> float:
    """Accuracy (0-1) of one prediction against one reference answer for a question of category `qcate`."""
    pred, target = normalize_text(prediction).split(), normalize_text(gold).split()
    if qcate == "number":
        pred, target = _integers(pred), _integers(target)
    elif qcate in DOMAINS:
        pred, target = list(DOMAINS[qcate].intersection(pred)), list(DOMAINS[qcate].intersection(target))
    same = sum((Counter(target) & Counter(pred)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(target)
    return 2 * precision * recall / (precision + recall) if qcate in F1_CATEGORIES else recall
