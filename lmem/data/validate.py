"""The checks every loaded example goes through, whatever its loader (docs/benchmarks.md, "Validation").

Errors (a RecordError naming the file, the record, the field and the fix; `on_bad_record: skip` skips and counts
them): an empty or whitespace question; no reference answers, or an empty one; an empty evidence pool where the
source has evidence (a closed-book-only source, such as the nq_open hub split, marks its examples
`metadata.closed_book_only`); a duplicate example id (checked by `load_examples`).

Repairs, counted in the prepared data's meta and in every result row: control characters (C0 other than tab and
new line, DEL, C1) are removed from questions, answers and evidence; an evidence item longer than the benchmark's
`max_item_chars` is cut to that many characters. An empty string among a question's other reference answers (25 of
TriviaQA's first 1,000 questions have one) is dropped and counted in the meta (`n_empty_answers`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lmem.io import InputError
from lmem.records import Example

CONTROL = re.compile(r"[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f-\x9f]")
DEFAULT_MAX_ITEM_CHARS = 10_000


class RecordError(InputError):
    """A malformed benchmark record; the message names the file, the record and what is wrong."""


@dataclass
class Repairs:
    """What validation changed in the data it let through, for the meta and the results table."""

    n_control_chars: int = 0
    n_truncated_items: int = 0
    n_empty_answers: int = 0  # empty strings among a question's other references, dropped
    examples: list[str] = field(default_factory=list)  # the first few repairs, located

    def note(self, loc: str, what: str) -> None:
        if len(self.examples) < 20:
            self.examples.append(f"{loc}: {what}")


def _clean(text: str, loc: str, what: str, repairs: Repairs) -> str:
    cleaned, n = CONTROL.subn("", text)
    if n:
        repairs.n_control_chars += n
        repairs.note(loc, f"{n} control character(s) removed from {what}")
    return cleaned


def validate_example(ex: Example, loc: str, max_item_chars: int, repairs: Repairs) -> Example:
    """Check one converted example and repair what can be repaired (see the module docstring)."""
    ex.question = _clean(ex.question, loc, "the question", repairs)
    if not ex.question.strip():
        raise RecordError(f"{loc}: the question is empty; give the record a question or remove it")
    if not isinstance(ex.answers, list) or not ex.answers:
        raise RecordError(f"{loc}: no reference answers (example {ex.id!r}); every question needs at least one "
                          f"answer to be scored, as in the official scripts")
    for i, a in enumerate(ex.answers):
        if not isinstance(a, str):
            raise RecordError(f"{loc}: answer {i + 1} is a {type(a).__name__} ({a!r}), not a string")
    answers = [_clean(a, loc, "an answer", repairs) for a in ex.answers]
    ex.answers = [a for a in answers if a.strip()]
    if not ex.answers:
        raise RecordError(f"{loc}: every reference answer of example {ex.id!r} is empty; fix the record or remove it")
    if len(ex.answers) < len(answers):  # e.g. TriviaQA's empty aliases: an empty reference would credit no answer
        repairs.n_empty_answers += len(answers) - len(ex.answers)
        repairs.note(loc, f"{len(answers) - len(ex.answers)} empty reference answer(s) dropped")
    if not ex.pool and not ex.metadata.get("closed_book_only"):
        raise RecordError(f"{loc}: the evidence pool of example {ex.id!r} is empty (no context sentences); give the "
                          f"record its context or remove it")
    for e in ex.pool:
        e.text = _clean(e.text, loc, f"evidence {e.id}", repairs)
        e.title = _clean(e.title, loc, f"the title of evidence {e.id}", repairs)
        if len(e.text) > max_item_chars:
            repairs.n_truncated_items += 1
            repairs.note(loc, f"evidence {e.id} cut from {len(e.text):,} to {max_item_chars:,} characters "
                              f"(max_item_chars)")
            e.text = e.text[:max_item_chars]
    return ex
