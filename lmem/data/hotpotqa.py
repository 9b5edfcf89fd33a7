"""HotpotQA distractor: hub schema (context{title[], sentences[][]}) and the original download schema
(context [[title, [sents]]], supporting_facts [[title, sent_id]])."""

from lmem.data import RecordError, register_loader, require, sentence_pool
from lmem.records import Example


def paragraphs_and_support(record: dict, loc: str) -> tuple[list[tuple[str, list[str]]], set[tuple[str, int]]]:
    """Both schemas -> ([(title, sentences)], {(title, sent_id)})."""
    ctx = require(record, "context", loc, (dict, list))
    sf = require(record, "supporting_facts", loc, (dict, list))
    if isinstance(ctx, dict):
        titles, sents = require(ctx, "title", loc, list), require(ctx, "sentences", loc, list)
        if len(titles) != len(sents):
            raise RecordError(f"{loc}: context has {len(titles)} titles but {len(sents)} sentence lists")
        paragraphs = list(zip(titles, sents))
    else:
        paragraphs = [(p[0], list(p[1])) for p in ctx]
    if isinstance(sf, dict):
        support = set(zip(require(sf, "title", loc, list), require(sf, "sent_id", loc, list)))
    else:
        support = {(t, int(i)) for t, i in sf}
    return paragraphs, support


@register_loader("hotpotqa")
def convert(record: dict, loc: str, opts: dict) -> Example:
    paragraphs, support = paragraphs_and_support(record, loc)
    qid = record.get("id") or require(record, "_id", loc)
    answer = require(record, "answer", loc, str)
    return Example(
        id=str(qid),
        benchmark=opts["benchmark"],
        question=require(record, "question", loc, str),
        answers=[answer],
        pool=sentence_pool(paragraphs, lambda t, pi, si: (t, si) in support),
        metadata={"type": record.get("type"), "level": record.get("level")},
    )
