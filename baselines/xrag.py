"""xRAG: one token per retrieved evidence item, made from the frozen dense retriever's embedding by the trained
projector (lmem/xrag.py). The retriever ranks each question's pool (cosine, as `dense`), and the top-k tokens go
into the generator prompt in rank order as `Latent context i: <token>`, exactly where Latent Memory puts latents,
so the token columns count the same things: one position per item plus the labels and the template.

Config: `projector` (a name under `projectors`, trained by the DAG). The DAG adds `projector_dir` to the spec."""

from lmem.baselines import Baseline, make_prediction
from lmem.encoders import DenseEncoder
from lmem.io import sha256_file
from lmem.prompts import encode_latent
from lmem.xrag import load_projector


class Xrag(Baseline):
    name = "xrag"

    def run(self, examples, generator, k):
        import torch

        projector = load_projector(self.spec["projector_dir"])
        encoder = DenseEncoder(projector.meta["retriever"], self.config["retriever"])
        self.models = {"retriever": encoder.resolved.tag,
                       "projector": "xrag@" + sha256_file(f"{self.spec['projector_dir']}/projector.safetensors")[:12]}
        prompts, vectors, retrieved = [], [], []
        with torch.no_grad():
            for ex, (best, emb) in zip(examples, encoder.rank_pools(examples, k)):
                prompt = encode_latent(generator.tokenizer, ex.question, len(best), self.config["prompt"])
                prompts.append(prompt)
                vectors.append(projector(emb[best].to(generator.model.device)))
                retrieved.append([ex.pool[i] for i in best])
        answers = generator.generate_latent(prompts, vectors, desc=f"{self.label} k={k}")
        self.bytes_per_item = float(projector.meta["d_in"] * 4)  # the stored retriever embedding (float32)
        return [make_prediction(ex, self.label, k, a, [e.id for e in ev], p)
                for ex, a, ev, p in zip(examples, answers, retrieved, prompts)]
