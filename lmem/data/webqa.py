"""WebQA. Official release `WebQA_train_val.json` ({guid: {Q, A, Qcate, split, txt_posFacts, txt_negFacts,

img_posFacts, img_negFacts}}): each text fact and each image (with title and caption) is one evidence item; image
bytes stay in imgs.tsv and are referenced as `imgs.tsv:<image_id>` (option `image_prefix` names another image
source, e.g. `synth-vqa`). Also the official val query TSV (Guid, Qcate, Q, A) that carries questions and answers
only. An example's `metadata.modality` is `image` when its gold facts are images (WebQA's image questions), else
`text`; the val TSVs say it in option `modality`."""

import base64
import io
import json
from pathlib import Path

from PIL import Image

from lmem.data import RecordError, register_loader, require
from lmem.io import InputError
from lmem.records import Evidence, Example


def _answers(raw, loc: str) -> list[str]:
    if isinstance(raw, list):
        return [str(a).strip().strip('"') for a in raw]
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            return [raw.strip().strip('"')]
        return _answers(parsed, loc) if isinstance(parsed, list) else [str(parsed)]
    raise RecordError(f"{loc}: field 'A' should be a list of answers")


FACT_KEYS = ("txt_posFacts", "txt_negFacts", "img_posFacts", "img_negFacts")


@register_loader("webqa")
def convert(record: dict, loc: str, opts: dict) -> Example | None:
    split = opts.get("split")
    if split and record.get("split") not in (None, split):
        return None
    pool = []
    prefix = opts.get("image_prefix", "imgs.tsv")
    for key, gold in (("txt_posFacts", True), ("txt_negFacts", False)):
        for f in record.get(key, []):
            pool.append(Evidence(id=f"t{f.get('snippet_id', len(pool))}", text=require(f, "fact", loc, str),
                                 title=f.get("title", ""), gold=gold))
    for key, gold in (("img_posFacts", True), ("img_negFacts", False)):
        for f in record.get(key, []):
            image_id = require(f, "image_id", loc)
            pool.append(Evidence(id=f"i{image_id}", text=f.get("caption", ""), kind="image",
                                 title=f.get("title", ""), gold=gold, image=f"{prefix}:{image_id}"))
    qid = record.get("Guid") or record.get("_key") or require(record, "Guid", loc)
    return Example(
        id=str(qid),
        benchmark=opts["benchmark"],
        question=require(record, "Q", loc, str).strip().strip('"'),
        answers=_answers(require(record, "A", loc), loc),
        pool=pool,
        metadata={"qcate": record.get("Qcate"), "keywords": record.get("Keywords_A"),
                  "closed_book_only": not any(k in record for k in FACT_KEYS),
                  "modality": opts.get("modality") or ("image" if record.get("img_posFacts") else "text")},
    )


class ImageStore:
    """WebQA's images, decoded lazily: `imgs.tsv` holds one `image_id<TAB>base64 JPEG` line per image and
    `imgs.lineidx` the byte offset of every line; as in the official code, image `i` is on line i % 10,000,000."""

    def __init__(self, tsv: str | Path, lineidx: str | Path | None = None):
        self.tsv = Path(tsv)
        self.lineidx = Path(lineidx) if lineidx else self.tsv.with_suffix(".lineidx")
        for path in (self.tsv, self.lineidx):
            if not path.exists():
                raise InputError(f"{path}: WebQA image file not found (imgs.tsv and imgs.lineidx of the release)")
        with open(self.lineidx) as f:
            try:
                self.offsets = [int(line) for line in f if line.strip()]
            except ValueError as e:
                raise InputError(f"{self.lineidx}: not a list of byte offsets ({e})") from e

    def _line(self, image_id: str | int) -> tuple[str, str]:
        n = int(image_id) % 10_000_000
        if n >= len(self.offsets):
            raise InputError(f"{self.tsv}: image {image_id} is past the end of {self.lineidx} ({len(self.offsets)} "
                             "lines); the image files do not match the questions' release")
        with open(self.tsv, "rb") as f:
            f.seek(self.offsets[n])
            fields = f.readline().decode().rstrip("\r\n").split("\t")
        if len(fields) != 2 or fields[0] != str(image_id):
            raise InputError(f"{self.tsv}: line {n} (offset {self.offsets[n]}) holds image {fields[0]!r}, not "
                             f"{image_id}; imgs.lineidx does not belong to this imgs.tsv")
        return fields[0], fields[1]

    def bytes(self, image_id: str | int) -> bytes:
        return base64.b64decode(self._line(image_id)[1])

    def image(self, image_id: str | int):
        """The decoded image (PIL, RGB)."""
        try:
            return Image.open(io.BytesIO(self.bytes(image_id))).convert("RGB")
        except Exception as e:  # a corrupt record: say which
            raise InputError(f"{self.tsv}: image {image_id} does not decode ({type(e).__name__}: {e})") from e

    def resolve(self, ref: str):
        """An Evidence.image reference (`imgs.tsv:<image_id>`) -> the image."""
        return self.image(ref.rsplit(":", 1)[1])
