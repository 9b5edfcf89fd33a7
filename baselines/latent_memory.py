"""Latent Memory: one latent per evidence item from the trained compressor's index; the question's `query`
embedding retrieves the top-k latents, which enter the generator prompt as `Latent context i: <latent>`.

Config: `compressor` (a name under `compressors`), `checkpoint` (best | init: the untrained compressor),
`retrieval` (pool: each question's own pool | global: the whole benchmark's evidence through FAISS), `memory`
(own | shuffled: the shuffled-memory control, each question answered from the latents another question
retrieves, a seeded derangement; its retrieved ids are that question's, never gold), `storage` (fp16 | int8 | pq:
the latents as the index stores them, lmem/index.py), `latent_layout` (paper | compact: the prompt layout, over
prompt.latent_layout). The DAG adds the checkpoint and index folders to the spec."""

from lmem.baselines import Baseline, make_prediction, memory_of
from lmem.compressor import checkpoint_tag, load_compressor
from lmem.corpus import retrieval_mode
from lmem.index import LatentIndex
from lmem.latent_memory import answer, global_retriever, pool_retriever


class LatentMemory(Baseline):
    name = "latent_memory"

    def run(self, examples, generator, k):
        compressor = load_compressor(self.spec["checkpoint_dir"], self.config.get("images"))
        index = LatentIndex.load(self.spec["index_dir"], self.spec.get("storage", "fp16"))
        self.models = {"compressor": checkpoint_tag(compressor, self.spec["checkpoint_dir"],
                                                    self.spec.get("checkpoint", "best"))}
        if retrieval_mode(self.spec, self.label) == "global":
            retrieve = global_retriever(examples, index)
        else:
            rows = [index.pool_rows(ex) for ex in examples]
            retrieve = pool_retriever(compressor, examples, [index.latents[r] for r in rows],
                                      [index.embeddings[r] for r in rows])
        prompt_cfg = dict(self.config["prompt"], **({"latent_layout": self.spec["latent_layout"]}
                                                    if self.spec.get("latent_layout") else {}))
        answers, retrieved, prompts = answer(compressor, generator, examples, retrieve, k, prompt_cfg,
                                             desc=f"{self.label} k={k}", memory_of=memory_of(self, examples))
        self.bytes_per_item = index.bytes_per_item  # as stored: fp16, int8 or PQ codes (lmem/index.py)
        return [make_prediction(ex, self.label, k, a, [e.id for e in ev], p)
                for ex, a, ev, p in zip(examples, answers, retrieved, prompts)]
