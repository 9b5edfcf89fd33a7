"""LongBench-Qasper (hub THUDM/LongBench, config qasper): input, context, answers, _id. No gold evidence."""

from lmem.data import register_loader, require, sentence_pool
from lmem.data.sentences import split_sentences
from lmem.records import Example


@register_loader("qasper")
def convert(record: dict, loc: str, opts: dict) -> Example:
    context = require(record, "context", loc, str)
    return Example(
        id=str(require(record, "_id", loc)),
        benchmark=opts["benchmark"],
        question=require(record, "input", loc, str),
        answers=list(require(record, "answers", loc, list)),
        pool=sentence_pool([("", split_sentences(context))], lambda t, pi, si: False),
        metadata={"has_gold": False},
    )
