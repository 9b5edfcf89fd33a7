"""TriviaQA: the hub `rc` schema (answer{value, aliases}, entity_pages{wiki_context[]},
search_results{search_context[]}) or the open schema (id, question, answers[]) with no evidence (closed-book only)."""

from lmem.data import contains_answer, register_loader, require, sentence_pool
from lmem.data.sentences import split_sentences
from lmem.records import Example


@register_loader("triviaqa")
def convert(record: dict, loc: str, opts: dict) -> Example:
    question = require(record, "question", loc, str)
    if "answer" in record and isinstance(record["answer"], dict):
        ans = record["answer"]
        answers = [require(ans, "value", loc, str)] + [a for a in ans.get("aliases", []) if a != ans["value"]]
        qid = require(record, "question_id", loc)
    else:
        answers = require(record, "answers", loc, list)
        qid = record.get("id", record.get("question_id"))
        if qid is None:
            require(record, "id", loc)
    paragraphs = []
    pages = record.get("entity_pages") or {}
    for title, text in zip(pages.get("title", []), pages.get("wiki_context", [])):
        paragraphs.append((title, split_sentences(text)))
    results = record.get("search_results") or {}
    for title, text in zip(results.get("title", []), results.get("search_context", [])):
        paragraphs.append((title, split_sentences(text)))
    max_sents = opts.get("max_pool_sentences", 200)
    pool = sentence_pool(paragraphs, lambda t, pi, si: False)[:max_sents]
    for e in pool:
        e.gold = contains_answer(e.text, answers)
    has_evidence = "entity_pages" in record or "search_results" in record
    return Example(id=str(qid), benchmark=opts["benchmark"], question=question, answers=list(answers), pool=pool,
                   metadata={"closed_book_only": not has_evidence})
