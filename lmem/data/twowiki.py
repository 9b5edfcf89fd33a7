"""2WikiMultihopQA, official dev.json schema (also one object per line). Option `aliases`: the release's
`id_aliases.json` (one {Q_id, aliases, demonyms} per line); the answer's aliases and demonyms (by `answer_id`) join
its references, as the official `2wikimultihop_evaluate_v1.1.py` scores them."""

import json
from functools import lru_cache
from pathlib import Path

from lmem.data import register_loader, require, sentence_pool
from lmem.data.hotpotqa import paragraphs_and_support
from lmem.io import InputError, read_jsonl
from lmem.records import Example


@lru_cache(maxsize=4)
def load_aliases(path: str) -> dict[str, list[str]]:
    """Q_id -> aliases + demonyms, from the release's id_aliases.json."""
    if not Path(path).exists():
        raise InputError(f"{path}: no such file (the 2WikiMultihopQA loader's `aliases` option should name the "
                         f"release's id_aliases.json)")
    out = {}
    for i, row in enumerate(read_jsonl(path), 1):
        try:
            out[row["Q_id"]] = list(row.get("aliases") or []) + list(row.get("demonyms") or [])
        except (KeyError, TypeError) as e:
            raise InputError(f"{path}:{i}: an alias line needs Q_id, aliases and demonyms ({e}): "
                             f"{json.dumps(row)[:80]}") from e
    return out


@register_loader("2wikimultihopqa")
def convert(record: dict, loc: str, opts: dict) -> Example:
    paragraphs, support = paragraphs_and_support(record, loc)
    answer = require(record, "answer", loc, str)
    answers = [answer]
    if opts.get("aliases"):
        extra = load_aliases(opts["aliases"]).get(record.get("answer_id"), [])
        answers += sorted({a for a in extra if isinstance(a, str) and a.strip() and a != answer})
    return Example(
        id=str(require(record, "_id", loc)),
        benchmark=opts["benchmark"],
        question=require(record, "question", loc, str),
        answers=answers,
        pool=sentence_pool(paragraphs, lambda t, pi, si: (t, si) in support),
        metadata={"type": record.get("type")},
    )
