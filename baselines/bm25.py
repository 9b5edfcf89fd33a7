"""BM25 top-k (bm25s, k1 and b from config; paper: 1.5 and 0.75) over each question's pool (`retrieval: pool`, the
default) or the whole benchmark's corpus, each distinct item indexed once (`retrieval: global`; lmem/corpus.py).
Images are found by their title and caption (caption BM25)."""

import bm25s

from lmem.baselines import TextEvidenceBaseline, top_k
from lmem.corpus import Corpus, retrieval_mode


class BM25(TextEvidenceBaseline):
    name = "bm25"
    options = {
        "k1": {"type": "number", "exclusiveMinimum": 0, "default": 1.5, "description": "BM25 term saturation"},
        "b": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.75, "description": "length normalisation"},
        "with_title": {"type": "boolean", "default": False, "description": "index 'title text' instead of the text"},
    }

    def _text(self, e):
        return f"{e.title} {e.text}".strip() if self.option("with_title") else e.search_text

    def _index(self, docs):
        retriever = bm25s.BM25(k1=self.option("k1"), b=self.option("b"))
        retriever.index(bm25s.tokenize(docs, stopwords="en", show_progress=False), show_progress=False)
        return retriever

    def _top(self, retriever, n_docs, question, k):
        query = bm25s.tokenize([question], stopwords="en", return_ids=False, show_progress=False)[0]
        return top_k(retriever.get_scores(query) if query else [0.0] * n_docs, k)

    def select(self, examples, k):
        if retrieval_mode(self.spec, self.label) == "global":
            corpus = Corpus.build(examples)
            retriever = self._index([self._text(e) for e in corpus.items])
            return [corpus.view(examples, i, self._top(retriever, len(corpus.items), ex.question, k))
                    for i, ex in enumerate(examples)]
        out = []
        for ex in examples:
            if not ex.pool:
                out.append([])
                continue
            retriever = self._index([self._text(e) for e in ex.pool])
            out.append([ex.pool[i] for i in self._top(retriever, len(ex.pool), ex.question, k)])
        return out
