"""WebQA. Official release `WebQA_train_val.json` ({guid: {Q, A, Qcate, split, txt_posFacts, txt_negFacts,

img_posFacts, img_negFacts}}): each text fact and each image (with title and caption) is one evidence item; image
bytes stay in imgs.tsv and are referenced as `imgs.tsv:<image_id>`. Also the official val query TSV
(Guid, Qcate, Q, A) that carries questions and answers only."""

import json

from lmem.data import RecordError, register_loader, require
from lmem.records import Evidence, Example


def _answers(raw, loc: str) -> list[str]:
    if isinstance(raw, list):
        return [str(a).strip().strip('"') for a in raw]
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            return [raw.strip().strip('"')]
        return _answers(parsed, loc) if isinstance(parsed, list) else [str(parsed)]
    raise RecordError(f"{loc}: field 'A' should be a list of answers")


@register_loader("webqa")
def convert(record: dict, loc: str, opts: dict) -> Example | None:
    split = opts.get("split")
    if split and record.get("split") not in (None, split):
        return None
    pool = []
    for key, gold in (("txt_posFacts", True), ("txt_negFacts", False)):
        for f in record.get(key, []):
            pool.append(Evidence(id=f"t{f.get('snippet_id', len(pool))}", text=require(f, "fact", loc, str),
                                 title=f.get("title", ""), gold=gold))
    for key, gold in (("img_posFacts", True), ("img_negFacts", False)):
        for f in record.get(key, []):
            image_id = require(f, "image_id", loc)
            pool.append(Evidence(id=f"i{image_id}", text=f.get("caption", ""), kind="image",
                                 title=f.get("title", ""), gold=gold, image=f"imgs.tsv:{image_id}"))
    qid = record.get("Guid") or record.get("_key") or require(record, "Guid", loc)
    return Example(
        id=str(qid),
        benchmark=opts["benchmark"],
        question=require(record, "Q", loc, str).strip().strip('"'),
        answers=_answers(require(record, "A", loc), loc),
        pool=pool,
        metadata={"qcate": record.get("Qcate"), "keywords": record.get("Keywords_A")},
    )
