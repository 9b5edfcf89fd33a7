"""xRAG: one token per retrieved evidence item, made from the frozen dense retriever's embedding by the trained
projector (lmem/xrag.py, trained by lmem/train_xrag.py). The retriever ranks each question's pool, or with
`retrieval: global` the benchmark's whole corpus (cosine, as `dense`; embeddings from the embed_corpus job), and the
top-k tokens go into the generator prompt in rank order as `Latent context i: <token>`, exactly where Latent Memory
puts latents, so the token columns count the same things: one position per item plus the labels and the template.

Config: `projector` (a name under `projectors`, trained by the DAG). The DAG adds `projector_dir` to the spec.
GPU profiles can select the released model instead: `released: true` with the method's generator set to
`Hannibal046/xrag-7b` (its projector is read from that checkpoint) and `retriever: Salesforce/SFR-Embedding-Mistral`
(last-token pooling, raw embeddings into the projector, cosine ranking, the retriever's query instruction in
`query_instruction`). The harness's prompt template is used, not the authors' own, so every method's token columns
count the same template. `memory: shuffled` is the shuffled-memory control (see baselines/latent_memory.py)."""

from lmem.baselines import Baseline, foreign, make_prediction, memory_of
from lmem.corpus import dense_rank, retrieval_mode
from lmem.encoders import DenseEncoder
from lmem.io import sha256_file
from lmem.prompts import encode_latent
from lmem.xrag import ReleasedProjector, load_projector


class Xrag(Baseline):
    name = "xrag"
    options = {
        "released": {"type": "boolean", "default": False,
                     "description": "the authors' released projector and retriever instead of the DAG's"},
        "retriever": {"type": "string", "default": "Salesforce/SFR-Embedding-Mistral",
                      "description": "the released projector's retriever"},
        "query_instruction": {"type": "string", "default": "", "description": "prefixed to each question"},
    }

    def run(self, examples, generator, k):
        import torch

        if self.option("released"):
            projector = ReleasedProjector(generator.resolved.path, generator.model.dtype)
            encoder = DenseEncoder(self.option("retriever"),
                                   self.config["retriever"], pooling="last",
                                   query_instruction=self.option("query_instruction"), normalize=False)
            self.models = {"retriever": encoder.resolved.tag, "projector": f"released:{generator.resolved.tag}"}
        else:
            projector = load_projector(self.spec["projector_dir"])
            encoder = DenseEncoder(projector.meta["retriever"], self.config["retriever"])
            self.models = {"retriever": encoder.resolved.tag, "projector": "xrag@" + sha256_file(
                f"{self.spec['projector_dir']}/projector.safetensors")[:12]}
        prompts, vectors, retrieved = [], [], []
        ranked = dense_rank(encoder, examples, k, retrieval_mode(self.spec, self.label), self.spec.get("embeddings"))
        partner = memory_of(self, examples) or list(range(len(examples)))
        with torch.no_grad():
            for i, ex in enumerate(examples):
                j = partner[i]  # i itself, or the shuffled-memory control's partner
                evidence, emb = ranked[j]
                prompt = encode_latent(generator.tokenizer, ex.question, len(evidence), self.config["prompt"])
                prompts.append(prompt)
                vectors.append(projector(emb.to(generator.model.device)))
                retrieved.append(evidence if j == i else foreign(examples[j], evidence))
        answers = generator.generate_latent(prompts, vectors, desc=f"{self.label} k={k}")
        self.bytes_per_item = float(projector.meta["d_in"] * 4)  # the stored retriever embedding (float32)
        return [make_prediction(ex, self.label, k, a, [e.id for e in ev], p)
                for ex, a, ev, p in zip(examples, answers, retrieved, prompts)]
