"""Latent Memory: one latent per evidence item from the trained compressor's index; the question's `query`
embedding retrieves the top-k latents, which enter the generator prompt as `Latent context i: <latent>`.

Config: `compressor` (a name under `compressors`), `checkpoint` (best | init: the untrained compressor),
`retrieval` (pool: each question's own pool | global: the whole benchmark's evidence through FAISS), `memory`
(own | shuffled: the shuffled-memory control, each question answered from the latents another question
retrieves, a seeded derangement; its retrieved ids are that question's, never gold). The DAG adds the checkpoint
and index folders to the spec."""

from dataclasses import replace

from lmem.baselines import Baseline, make_prediction, memory_of
from lmem.compressor import checkpoint_tag, load_compressor
from lmem.index import LatentIndex
from lmem.latent_memory import answer, pool_retriever


class LatentMemory(Baseline):
    name = "latent_memory"

    def run(self, examples, generator, k):
        compressor = load_compressor(self.spec["checkpoint_dir"], self.config.get("images"))
        index = LatentIndex.load(self.spec["index_dir"])
        self.models = {"compressor": checkpoint_tag(compressor, self.spec["checkpoint_dir"],
                                                    self.spec.get("checkpoint", "best"))}
        if self.spec.get("retrieval", "pool") == "global":
            retrieve = self._global_retriever(compressor, examples, index)
        else:
            rows = [index.pool_rows(ex) for ex in examples]
            retrieve = pool_retriever(compressor, examples, [index.latents[r] for r in rows],
                                      [index.embeddings[r] for r in rows])
        answers, retrieved, prompts = answer(compressor, generator, examples, retrieve, k, self.config["prompt"],
                                             desc=f"{self.label} k={k}", memory_of=memory_of(self, examples))
        self.bytes_per_item = float(index.latents.shape[1] * index.latents.shape[2] * 2)
        return [make_prediction(ex, self.label, k, a, [e.id for e in ev], p)
                for ex, a, ev, p in zip(examples, answers, retrieved, prompts)]

    @staticmethod
    def _global_retriever(compressor, examples, index):
        """One memory over every evidence item of the benchmark: items from another question's pool count as
        retrieved but never as gold."""
        by_key = {f"{ex.id}\t{e.id}": e for ex in examples for e in ex.pool}

        def retrieve(i, query, k):
            rows = [int(r) for r in index.search(query.numpy()[None], k)[0] if r >= 0]
            evidence = []
            for r in rows:
                ex_id, ev_id = index.keys[r].split("\t")
                e = by_key[index.keys[r]]
                evidence.append(e if ex_id == examples[i].id else replace(e, id=f"{ex_id}/{ev_id}", gold=False))
            return evidence, index.latents[rows]

        return retrieve
