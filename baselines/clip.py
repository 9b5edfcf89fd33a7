"""CLIP image retrieval (VisRAG-style), for image benchmarks when a CLIP model is configured: the question's CLIP
text embedding ranks each pool's images by their CLIP image embedding (text facts by their CLIP text embedding),
and the top-k items go to the generator as raw evidence (images through the VLM or composed VLM).

Config: `model` (a CLIP checkpoint: hub id or folder, e.g. openai/clip-vit-large-patch14-336), `retrieval` (pool |
global: the benchmark's whole corpus, lmem/corpus.py). No CLIP model installs offline, so offline the method is
reported as not run."""

import torch

from lmem.baselines import MethodUnavailable, TextEvidenceBaseline, top_k
from lmem.corpus import Corpus, flat_search, retrieval_mode
from lmem.images import ImageResolver
from lmem.io import InputError
from lmem.models import ModelNotFound, resolve


def _features(out) -> torch.Tensor:
    """get_*_features returns a tensor, or an output whose pooled projection is `pooler_output`."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class Clip(TextEvidenceBaseline):
    name = "clip"
    options = {"model": {"type": ["string", "null"], "default": None, "description": "a CLIP model (hub id or folder)"}}

    def select(self, examples, k):
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        from lmem.stage import device

        if not self.option("model"):
            raise InputError(f"method {self.label}: give the CLIP checkpoint as `model` (e.g. "
                             "openai/clip-vit-large-patch14-336)")
        try:
            resolved = resolve(self.option("model"), prefer="hub")
        except ModelNotFound as e:
            raise MethodUnavailable(f"CLIP model {self.option('model')!r} is not available here: {e}") from e
        model = AutoModel.from_pretrained(str(resolved.path)).eval().to(device())
        tokenizer = AutoTokenizer.from_pretrained(str(resolved.path))
        image_processor = AutoImageProcessor.from_pretrained(str(resolved.path))
        resolve_image = ImageResolver(self.config.get("images"))
        self.models = {"retriever": resolved.tag}
        max_len = getattr(model.config.text_config, "max_position_embeddings", 77)

        @torch.no_grad()
        def text(texts):
            enc = tokenizer(texts, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
            features = _features(model.get_text_features(**enc.to(model.device)))
            return torch.nn.functional.normalize(features.float(), dim=-1)

        @torch.no_grad()
        def image(refs):
            pixels = image_processor([resolve_image(r) for r in refs], return_tensors="pt")["pixel_values"]
            return torch.nn.functional.normalize(_features(model.get_image_features(
                pixel_values=pixels.to(model.device))).float(), dim=-1)

        corpus = Corpus.build(examples)  # each distinct item embedded once
        queries = torch.cat([text([ex.question for ex in examples[s:s + 32]]) for s in range(0, len(examples), 32)])
        emb = torch.zeros((len(corpus.items), queries.shape[1]), device=queries.device)
        for kind, embed in (("image", image), ("text", text)):
            rows = [i for i, e in enumerate(corpus.items) if (e.kind == "image") == (kind == "image")]
            for s in range(0, len(rows), 16):
                batch = rows[s:s + 16]
                emb[batch] = embed([corpus.items[i].image if kind == "image" else corpus.items[i].text
                                    for i in batch])
        if retrieval_mode(self.spec, self.label) == "global":
            found = flat_search(emb.cpu().numpy(), queries.cpu().numpy(), k)
            return [corpus.view(examples, i, r) for i, r in enumerate(found)]
        return [[ex.pool[j] for j in top_k((emb[corpus.pool_rows[i]] @ queries[i]).tolist(), k)] if ex.pool else []
                for i, ex in enumerate(examples)]
