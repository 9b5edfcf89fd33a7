"""2WikiMultihopQA, official dev.json schema (also one object per line)."""

from lmem.data import register_loader, require, sentence_pool
from lmem.data.hotpotqa import paragraphs_and_support
from lmem.records import Example


@register_loader("2wikimultihopqa")
def convert(record: dict, loc: str, opts: dict) -> Example:
    paragraphs, support = paragraphs_and_support(record, loc)
    return Example(
        id=str(require(record, "_id", loc)),
        benchmark=opts["benchmark"],
        question=require(record, "question", loc, str),
        answers=[require(record, "answer", loc, str)],
        pool=sentence_pool(paragraphs, lambda t, pi, si: (t, si) in support),
        metadata={"type": record.get("type")},
    )
