"""MuSiQue-Ans, official schema. Gold is paragraph level: every sentence of an `is_supporting` paragraph
(docs/method.md section 1); option `gold: answer_sentences` narrows it to supporting sentences that hold an answer."""

from lmem.data import RecordError, contains_answer, register_loader, require, require_bool, sentence_pool
from lmem.data.sentences import split_sentences
from lmem.records import Example


@register_loader("musique")
def convert(record: dict, loc: str, opts: dict) -> Example:
    aliases = record.get("answer_aliases") or []
    if not isinstance(aliases, list):
        raise RecordError(f"{loc}: field 'answer_aliases' should be a list of strings, got {type(aliases).__name__}")
    answers = [require(record, "answer", loc, str)] + aliases
    paras = require(record, "paragraphs", loc, list)
    paragraphs = [(require(p, "title", loc, str), split_sentences(require(p, "paragraph_text", loc, str)))
                  for p in paras]
    supporting = {i for i, p in enumerate(paras)
                  if require_bool(p, "is_supporting", loc, f"paragraph {i + 1}", default=False)}
    mode = opts.get("gold", "paragraph")
    pool = sentence_pool(paragraphs, lambda t, pi, si: pi in supporting)
    if mode == "answer_sentences":
        for e in pool:
            e.gold = e.gold and contains_answer(e.text, answers)
    return Example(
        id=str(require(record, "id", loc)),
        benchmark=opts["benchmark"],
        question=require(record, "question", loc, str),
        answers=answers,
        pool=pool,
        metadata={"answerable": require_bool(record, "answerable", loc, default=True)},
    )
