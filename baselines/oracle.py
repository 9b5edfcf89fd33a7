"""Oracle: the gold evidence only (an upper bound for retrieval)."""

from lmem.baselines import TextEvidenceBaseline


class Oracle(TextEvidenceBaseline):
    name = "oracle"
    uses_k = False

    def select(self, examples, k):
        return [[e for e in ex.pool if e.gold] for ex in examples]
