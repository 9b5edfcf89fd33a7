"""Natural Questions (open): question/answers plus provided passages (`ctxs`, DPR / lost-in-the-middle schema).
The hub's nq_open has no passages; such records give an empty pool (closed-book only)."""

from lmem.data import contains_answer, register_loader, require, sentence_pool
from lmem.data.sentences import split_sentences
from lmem.io import sha256_json
from lmem.records import Example


@register_loader("nq")
def convert(record: dict, loc: str, opts: dict) -> Example:
    question = require(record, "question", loc, str)
    answers = require(record, "answers" if "answers" in record else "answer", loc, list)
    ctxs = require(record, "ctxs", loc, list) if "ctxs" in record else []
    max_ctxs = opts.get("max_ctxs")
    ctxs = ctxs[:max_ctxs] if max_ctxs else ctxs
    paragraphs = [(require(c, "title", loc, str), split_sentences(require(c, "text", loc, str))) for c in ctxs]
    pool = sentence_pool(paragraphs, lambda t, pi, si: False)
    for e in pool:  # NQ marks passages, not sentences: gold = sentences that contain an answer string
        e.gold = contains_answer(e.text, answers)
    qid = record.get("id") or "nq-" + sha256_json(question)[:16]
    return Example(id=str(qid), benchmark=opts["benchmark"], question=question, answers=list(answers), pool=pool,
                   metadata={"closed_book_only": "ctxs" not in record})
