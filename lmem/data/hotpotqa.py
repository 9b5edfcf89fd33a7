"""HotpotQA distractor: hub schema (context{title[], sentences[][]}) and the original download schema
(context [[title, [sents]]], supporting_facts [[title, sent_id]]). Every gold pointer must name a paragraph of the
context and a sentence inside it."""

from lmem.data import RecordError, check_index, register_loader, require, sentence_pool
from lmem.records import Example


def _paragraphs(ctx, loc: str) -> list[tuple[str, list[str]]]:
    if isinstance(ctx, dict):
        titles, sents = require(ctx, "title", loc, list, "context"), require(ctx, "sentences", loc, list, "context")
        if len(titles) != len(sents):
            raise RecordError(f"{loc}: context has {len(titles)} titles but {len(sents)} sentence lists")
        pairs = list(zip(titles, sents))
    else:
        pairs = []
        for i, p in enumerate(ctx):
            if not (isinstance(p, list) and len(p) == 2):
                raise RecordError(f"{loc}: context paragraph {i + 1} should be [title, [sentences]], got "
                                  f"{str(p)[:60]!r}")
            pairs.append((p[0], p[1]))
    for i, (title, sents) in enumerate(pairs):
        if not isinstance(title, str) or not isinstance(sents, list) or not all(isinstance(x, str) for x in sents):
            raise RecordError(f"{loc}: context paragraph {i + 1} should be a title string and a list of sentence "
                              f"strings, got {str((title, sents))[:80]!r}")
    return pairs


def paragraphs_and_support(record: dict, loc: str) -> tuple[list[tuple[str, list[str]]], set[tuple[str, int]]]:
    """Both schemas -> ([(title, sentences)], {(title, sent_id)}); a pointer to no paragraph or sentence is an error."""
    paragraphs = _paragraphs(require(record, "context", loc, (dict, list)), loc)
    sf = require(record, "supporting_facts", loc, (dict, list))
    if isinstance(sf, dict):
        facts = list(zip(require(sf, "title", loc, list, "supporting_facts"),
                         require(sf, "sent_id", loc, list, "supporting_facts")))
    else:
        facts = []
        for i, f in enumerate(sf):
            if not (isinstance(f, list) and len(f) == 2):
                raise RecordError(f"{loc}: supporting fact {i + 1} should be [title, sent_id], got {str(f)[:60]!r}")
            facts.append((f[0], f[1]))
    sizes: dict[str, int] = {}
    for title, sents in paragraphs:
        sizes[title] = max(sizes.get(title, 0), len(sents))
    support = set()
    for i, (title, sent_id) in enumerate(facts):
        if title not in sizes:
            raise RecordError(f"{loc}: supporting fact {i + 1} names paragraph {title!r}, which is not in the context "
                              f"({len(sizes)} titles); fix the record's supporting_facts")
        support.add((title, check_index(sent_id, sizes[title], loc, f"supporting fact {i + 1} ({title!r}) sent_id")))
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
