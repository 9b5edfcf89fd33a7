"""WiCE claim level (official data/entailment_retrieval/claim/*.jsonl): claim, evidence[], supporting_sentences
[[ids]], label. The answer is the label, asked as a question about the claim."""

from lmem.data import RecordError, register_loader, require
from lmem.io import sha256_json
from lmem.records import Evidence, Example

LABELS = {"supported": "supported", "partially_supported": "partially supported", "not_supported": "not supported"}
QUESTION = "Is the following claim supported, partially supported, or not supported by the context? Claim: {claim}"


@register_loader("wice")
def convert(record: dict, loc: str, opts: dict) -> Example:
    claim = require(record, "claim", loc, str)
    label = require(record, "label", loc, str)
    if label not in LABELS:
        raise RecordError(f"{loc}: unknown label {label!r}; expected one of {sorted(LABELS)}")
    evidence = require(record, "evidence", loc, list)
    support = {int(i) for group in record.get("supporting_sentences", []) for i in group}
    pool = [Evidence(id=f"s{i}", text=s.strip(), gold=i in support) for i, s in enumerate(evidence) if s.strip()]
    meta = record.get("meta") or {}
    qid = meta.get("id") or "wice-" + sha256_json([claim, evidence[:3]])[:16]
    return Example(
        id=str(qid),
        benchmark=opts["benchmark"],
        question=opts.get("question_template", QUESTION).format(claim=claim),
        answers=[LABELS[label]],
        pool=pool,
        metadata={"label": label},
    )
