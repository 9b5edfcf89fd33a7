"""Cross-family raw text (docs/method.md section 7): the trained Latent Memory compressor's `query` embedding retrieves
the top-k evidence of each pool by its latent index's retrieval embeddings, and their raw text (in document order)
goes to a generator of another family, which could not read the latents: the paper's Llama-3.2-1B compressor with
a raw-text Mistral-7B-Instruct generator; offline, SmolLM2 (Llama architecture) with Gemma 3 270M.

Config: `compressor` and `checkpoint` as for `latent_memory` (the DAG adds the checkpoint and index folders), and
`generator` (this method's own generator settings, merged over the run's: e.g. `{model: google/gemma-3-270m}`),
`retrieval` (pool | global: the benchmark's whole corpus through the latent index's FAISS index, as Latent Memory)."""

from lmem.baselines import TextEvidenceBaseline, top_k
from lmem.compressor import checkpoint_tag, load_compressor
from lmem.corpus import retrieval_mode
from lmem.index import LatentIndex
from lmem.latent_memory import embed_questions, global_retriever


class CrossFamily(TextEvidenceBaseline):
    name = "cross_family"

    def select(self, examples, k):
        compressor = load_compressor(self.spec["checkpoint_dir"], self.config.get("images"))
        index = LatentIndex.load(self.spec["index_dir"])
        self.models = {"compressor": checkpoint_tag(compressor, self.spec["checkpoint_dir"],
                                                    self.spec.get("checkpoint", "best"))}
        queries = embed_questions(compressor, [ex.question for ex in examples])
        if retrieval_mode(self.spec, self.label) == "global":
            retrieve = global_retriever(examples, index)
            return [retrieve(i, q, k)[0] for i, q in enumerate(queries)]
        out = []
        for ex, q in zip(examples, queries):
            emb = index.embeddings[index.pool_rows(ex)]
            out.append([ex.pool[i] for i in top_k((emb.float() @ q).tolist(), k)])
        return out
