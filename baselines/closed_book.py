"""Closed book: the question alone, no evidence."""

from lmem.baselines import TextEvidenceBaseline


class ClosedBook(TextEvidenceBaseline):
    name = "closed_book"
    uses_k = False

    def select(self, examples, k):
        return [[] for _ in examples]
