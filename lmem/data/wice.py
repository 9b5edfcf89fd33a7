"""WiCE claim level (official data/entailment_retrieval/claim/*.jsonl): claim, evidence[], supporting_sentences
[[ids]], label. The answer is the label, asked as a question about the claim. Each inner list of
`supporting_sentences` is one complete alternative set of supporting sentences: an item is gold when it is in any
set, and recall@k is the best set's (`metadata.gold_sets`)."""

from lmem.data import RecordError, check_index, register_loader, require
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
    groups = record.get("supporting_sentences") or []
    if not isinstance(groups, list) or not all(isinstance(g, list) for g in groups):
        raise RecordError(f"{loc}: field 'supporting_sentences' should be a list of lists of sentence indices, got "
                          f"{str(groups)[:60]!r}")
    for i, s in enumerate(evidence):
        if not isinstance(s, str):
            raise RecordError(f"{loc}: evidence sentence {i} should be a string, got {type(s).__name__}")
    sets = [sorted({check_index(i, len(evidence), loc, f"supporting_sentences set {g + 1} index")
                    for i in group}) for g, group in enumerate(groups)]
    support = {i for s in sets for i in s}
    pool = [Evidence(id=f"s{i}", text=s.strip(), gold=i in support) for i, s in enumerate(evidence) if s.strip()]
    kept = {e.id for e in pool}
    gold_sets = [[f"s{i}" for i in s if f"s{i}" in kept] for s in sets]
    meta = record.get("meta") or {}
    qid = meta.get("id") or "wice-" + sha256_json([claim, evidence[:3]])[:16]
    return Example(
        id=str(qid),
        benchmark=opts["benchmark"],
        question=opts.get("question_template", QUESTION).format(claim=claim),
        answers=[LABELS[label]],
        pool=pool,
        metadata={"label": label, "gold_sets": [g for g in gold_sets if g] or None},
    )
