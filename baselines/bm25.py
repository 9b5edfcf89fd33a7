"""BM25 top-k over each question's pool (bm25s, k1 and b from config; paper: 1.5 and 0.75). Images are found by
their title and caption (caption BM25)."""

import bm25s

from lmem.baselines import TextEvidenceBaseline, top_k


class BM25(TextEvidenceBaseline):
    name = "bm25"

    def select(self, examples, k):
        k1, b = self.spec.get("k1", 1.5), self.spec.get("b", 0.75)
        out = []
        for ex in examples:
            if not ex.pool:
                out.append([])
                continue
            docs = [f"{e.title} {e.text}".strip() if self.spec.get("with_title") else e.search_text for e in ex.pool]
            retriever = bm25s.BM25(k1=k1, b=b)
            retriever.index(bm25s.tokenize(docs, stopwords="en", show_progress=False), show_progress=False)
            query = bm25s.tokenize([ex.question], stopwords="en", return_ids=False, show_progress=False)[0]
            scores = retriever.get_scores(query) if query else [0.0] * len(docs)
            out.append([ex.pool[i] for i in top_k(scores, k)])
        return out
