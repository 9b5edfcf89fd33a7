"""Full context: every pool item as raw text in document order (the last ones are dropped first when too long)."""

from lmem.baselines import TextEvidenceBaseline


class FullContext(TextEvidenceBaseline):
    name = "full_context"
    uses_k = False

    def select(self, examples, k):
        return [list(ex.pool) for ex in examples]
