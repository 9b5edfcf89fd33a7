"""Image evidence: an `Evidence.image` reference -> the decoded image.

References are `<source>:<image_id>`: `imgs.tsv:<id>` is WebQA's release (the benchmark's `images: {tsv, lineidx}`
names the files; read lazily by byte offset), `synth-vqa:<id>` a generated tile (rendered from its id).
"""

from __future__ import annotations

from lmem.data.synth_vqa import render
from lmem.data.webqa import ImageStore
from lmem.io import InputError


class ImageResolver:
    def __init__(self, spec: dict | None = None):
        self.spec = spec or {}
        self._store = None

    def _tsv(self):
        if self._store is None:
            if not self.spec.get("tsv"):
                raise InputError("image evidence refers to imgs.tsv, but the benchmark's config gives no "
                                 "images: {tsv: path/to/imgs.tsv} (WebQA's image file, with imgs.lineidx beside it)")
            self._store = ImageStore(self.spec["tsv"], self.spec.get("lineidx"))
        return self._store

    def __call__(self, ref: str | None):
        """The PIL image (RGB) of a reference, downscaled to `max_side` pixels on its longer side when the spec
        says so (WebQA's photos are large; the paper's profiles downscale them before the processor)."""
        image = self._open(ref)
        side = self.spec.get("max_side")
        if side and max(image.size) > side:
            image = image.copy()
            image.thumbnail((side, side))
        return image

    def _open(self, ref: str | None):
        if not ref or ":" not in ref:
            raise InputError(f"image reference {ref!r} is not <source>:<image_id>")
        source, image_id = ref.split(":", 1)
        if source == "imgs.tsv":
            return self._tsv().image(image_id)
        if source == "synth-vqa":
            try:
                return render(image_id)
            except ValueError as e:
                raise InputError(str(e)) from e
        raise InputError(f"image reference {ref!r}: unknown image source {source!r} (known: imgs.tsv, synth-vqa)")
