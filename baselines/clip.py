"""CLIP image retrieval (VisRAG-style), for image benchmarks when a CLIP model is configured: the question's CLIP
text embedding ranks each pool's images by their CLIP image embedding (text facts by their CLIP text embedding),
and the top-k items go to the generator as raw evidence (images through the VLM or composed VLM).

Config: `model` (a CLIP checkpoint: hub id or folder, e.g. openai/clip-vit-large-patch14-336). No CLIP model
installs offline, so offline the method is reported as not run."""

import torch

from lmem.baselines import MethodUnavailable, TextEvidenceBaseline, top_k
from lmem.images import ImageResolver
from lmem.io import InputError
from lmem.models import ModelNotFound, resolve


def _features(out) -> torch.Tensor:
    """get_*_features returns a tensor, or an output whose pooled projection is `pooler_output`."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class Clip(TextEvidenceBaseline):
    name = "clip"

    def select(self, examples, k):
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        from lmem.stage import device

        if not self.spec.get("model"):
            raise InputError(f"method {self.label}: give the CLIP checkpoint as `model` (e.g. "
                             "openai/clip-vit-large-patch14-336)")
        try:
            resolved = resolve(self.spec["model"], prefer="hub")
        except ModelNotFound as e:
            raise MethodUnavailable(f"CLIP model {self.spec['model']!r} is not available here: {e}") from e
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

        out = []
        for ex in examples:
            if not ex.pool:
                out.append([])
                continue
            query = text([ex.question])[0]
            emb = torch.zeros((len(ex.pool), query.shape[0]), device=query.device)
            images = [i for i, e in enumerate(ex.pool) if e.kind == "image"]
            texts = [i for i, e in enumerate(ex.pool) if e.kind != "image"]
            if images:
                emb[images] = image([ex.pool[i].image for i in images])
            if texts:
                emb[texts] = text([ex.pool[i].text for i in texts])
            out.append([ex.pool[i] for i in top_k((emb @ query).tolist(), k)])
        return out
