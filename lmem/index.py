"""Stage `index`: the latent index (Latent Memory's memory). Every evidence item of a benchmark is compressed once
(batched, sorted by length) into T latents; latents (fp16) and retrieval embeddings are stored in safetensors shards
with an id map, plus a FAISS index (flat, IVF or IVF-PQ) over the embeddings for global-corpus retrieval. Shards are
written atomically and skipped when present, so an interrupted build resumes.

Latent storage (`storages` in the index spec; a method picks one with `storage`): `fp16` (the shards), `int8`
(per-dimension symmetric scale, 1 byte per value) and `pq` (FAISS product quantization, `pq_m` one-byte codes per
latent vector). Each quantized form is written beside the shards (`latents-<storage>.safetensors`) and decoded when
loaded; its bytes per item count the codes plus its share of the scales or codebook.

Usage: python -m lmem.index --checkpoint DIR --data DATA.jsonl --out DIR [--spec JSON] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path

import faiss
import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from lmem.compressor import load_compressor
from lmem.io import atomic_path, write_json
from lmem.options import IndexConfig
from lmem.prepare import read_examples
from lmem.records import Example
from lmem.stage import parse_spec, setup

log = logging.getLogger("lmem.index")


def item_key(example_id: str, evidence_id: str) -> str:
    return f"{example_id}\t{evidence_id}"


STORAGES = ("fp16", "int8", "pq")


def encode_latents(latents: torch.Tensor, storage: str, pq_m: int = 64) -> tuple[dict, float]:
    """(tensors to store, bytes per item) of (N, T, H) latents in `storage`."""
    n, t, h = latents.shape
    x = latents.float().reshape(n * t, h)
    if storage == "int8":
        scale = (x.abs().amax(0) / 127).clamp(min=1e-8)
        codes = torch.round(x / scale).clamp(-127, 127).to(torch.int8)
        return {"codes": codes, "scale": scale}, t * h + scale.numel() * 4 / max(n, 1)
    if storage == "pq":
        if h % pq_m:
            raise ValueError(f"pq_m {pq_m} must divide the latent size {h}")
        nbits = max(1, min(8, int(math.log2(max(n * t, 2)))))  # k-means needs as many points as centroids
        pq = faiss.ProductQuantizer(h, pq_m, nbits)
        data = np.ascontiguousarray(x.numpy(), dtype=np.float32)
        pq.train(data)
        codes = torch.from_numpy(pq.compute_codes(data).copy())
        centroids = torch.from_numpy(faiss.vector_to_array(pq.centroids).copy())
        meta = torch.tensor([h, pq_m, nbits])
        return ({"codes": codes, "centroids": centroids, "pq": meta},
                t * codes.shape[1] + centroids.numel() * 4 / max(n, 1))
    raise ValueError(f"unknown latent storage {storage!r}; known: {STORAGES}")


def decode_latents(tensors: dict, shape: tuple[int, int, int]) -> torch.Tensor:
    """The (N, T, H) fp16 latents a stored form decodes to."""
    if "scale" in tensors:
        x = tensors["codes"].float() * tensors["scale"]
    else:
        h, m, nbits = tensors["pq"].tolist()
        pq = faiss.ProductQuantizer(h, m, nbits)
        faiss.copy_array_to_vector(tensors["centroids"].numpy().astype(np.float32), pq.centroids)
        x = torch.from_numpy(pq.decode(np.ascontiguousarray(tensors["codes"].numpy(), dtype=np.uint8)))
    return x.reshape(shape).half()


NPROBE = IndexConfig.nprobe  # IVF lists searched per query unless the index spec says `nprobe`


def build_index(compressor, examples: list[Example], out_dir: str | Path, batch_size: int = IndexConfig.batch_size,
                shard_size: int = IndexConfig.shard_size, faiss_type: str = IndexConfig.faiss,
                nlist: int = IndexConfig.nlist, storages: tuple[str, ...] = ("fp16",), pq_m: int = IndexConfig.pq_m,
                nprobe: int = NPROBE, pca: int = IndexConfig.pca, refine: int = IndexConfig.refine) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keys = [item_key(ex.id, e.id) for ex in examples for e in ex.pool]
    evidence = [e for ex in examples for e in ex.pool]
    texts = [e.text for e in evidence]
    ids, prefixes = compressor.evidence_inputs(evidence)  # images: visual tokens before title and caption
    lengths = [len(t) + (0 if p is None else p.shape[0]) for t, p in zip(ids, prefixes)]
    order = sorted(range(len(ids)), key=lambda i: (lengths[i], i))  # similar lengths share a batch: little padding
    n_shards = max(1, math.ceil(len(order) / shard_size))
    start = time.time()
    compressor.eval()
    with tqdm(total=len(order), desc="compress evidence", unit="item", mininterval=5) as bar:
        for s in range(n_shards):
            path = out / f"shard-{s:05d}.safetensors"
            rows = order[s * shard_size:(s + 1) * shard_size]
            if path.exists():  # resume: this shard was finished before
                bar.update(len(rows))
                continue
            latents, embs = [], []
            with torch.no_grad():
                for b in range(0, len(rows), batch_size):
                    batch = rows[b:b + batch_size]
                    lat = compressor.compress([ids[i] for i in batch], [prefixes[i] for i in batch])
                    latents.append(lat.half().cpu())
                    embs.append(compressor.retrieval_embedding(lat).float().cpu())
                    bar.update(len(rows[b:b + batch_size]))
            tensors = {"rows": torch.tensor(rows, dtype=torch.long),
                       "latents": torch.cat(latents) if latents else torch.zeros((0, 1, 1), dtype=torch.half),
                       "embeddings": torch.cat(embs).float() if embs else torch.zeros((0, 1))}
            with atomic_path(path) as tmp:
                save_file(tensors, str(tmp))
    seconds = time.time() - start
    index = LatentIndex.load_shards(out, keys)
    _write_faiss(index.embeddings.numpy(), out / "faiss.index", faiss_type, nlist, pca, refine)
    T, H = index.latents.shape[1:]
    storage = {"fp16": {"bytes_per_item": int(T * H * 2)}}
    for name in storages:
        if name != "fp16":
            tensors, nbytes = encode_latents(index.latents, name, pq_m)
            with atomic_path(out / f"latents-{name}.safetensors") as tmp:
                save_file(tensors, str(tmp))
            err = (decode_latents(tensors, tuple(index.latents.shape)).float() - index.latents.float()).norm()
            storage[name] = {"bytes_per_item": round(nbytes, 2),
                             "relative_error": round(float(err / index.latents.float().norm().clamp(min=1e-8)), 5)}
    raw = [len(t.encode()) for t in texts]
    meta = {"n_items": len(keys), "n_examples": len(examples), "num_mem_tokens": int(T), "hidden": int(H),
            "retrieval_dim": int(index.embeddings.shape[1]), "bytes_per_item": int(T * H * 2),
            "raw_text_bytes_per_item": float(np.mean(raw)) if raw else 0.0, "shards": n_shards,
            "faiss": faiss_type, "nprobe": int(nprobe), "pca": int(pca), "refine": int(refine),
            "seconds": round(seconds, 2), "storage": storage,
            "items_per_second": round(len(keys) / seconds, 2) if seconds > 0 else None}
    with atomic_path(out / "ids.json") as tmp:
        tmp.write_text(json.dumps(keys))
    write_json(out / "meta.json", meta)  # written last: its presence marks a finished index
    return meta


def _write_faiss(embeddings: np.ndarray, path: Path, faiss_type: str, nlist: int, pca: int = 0,
                 refine: int = 0) -> None:
    d = embeddings.shape[1]
    # checked on every corpus, also one small enough for the flat fallback below (as when the profile loaded)
    IndexConfig(faiss=faiss_type, nlist=nlist, pca=pca, refine=refine).check_dims(d)
    if faiss_type in ("ivf", "ivfpq") and len(embeddings) >= 39 * nlist:
        if faiss_type == "ivfpq":  # one one-byte code per 4 dimensions (of the PCA rotation's `pca`, if any)
            coded = pca or d
            rotate = f"PCA{pca}," if pca else ""
            # IVFPQR (a second code of what the first leaves) exists for L2 only; on the unit retrieval embeddings
            # L2 ranks as inner product does (|q - x|^2 = 2 - 2 q.x; after a PCA rotation, as the rotated part of
            # that distance does), and search uses the ranks alone
            second = f"+{refine}" if refine else ""
            index = faiss.index_factory(d, f"{rotate}IVF{nlist},PQ{max(1, coded // 4)}{second}",
                                        faiss.METRIC_L2 if refine else faiss.METRIC_INNER_PRODUCT)
        else:
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(embeddings)
    else:  # flat: exact inner product (= cosine on unit vectors); also the fallback for small corpora
        index = faiss.IndexFlatIP(d)
    index.add(embeddings.astype(np.float32))
    with atomic_path(path) as tmp:
        faiss.write_index(index, str(tmp))


def set_nprobe(index, nprobe: int) -> None:
    """Search `nprobe` lists of an IVF index, alone or after a PCA rotation, on CPU or GPU; a flat index has none."""
    while isinstance(index, faiss.IndexPreTransform):
        index = faiss.downcast_index(index.index)
    if hasattr(index, "nprobe"):
        index.nprobe = nprobe


class LatentIndex:
    """Latents (N, T, H) fp16, retrieval embeddings (N, D) and the key of every row (example id, evidence id)."""

    def __init__(self, keys: list[str], latents: torch.Tensor, embeddings: torch.Tensor, folder: Path | None = None):
        self.keys, self.latents, self.embeddings, self.folder = keys, latents, embeddings, folder
        self.row = {k: i for i, k in enumerate(keys)}
        self._faiss = None
        self.nprobe = NPROBE  # IVF lists searched per query (the index's `nprobe`, from meta.json when loaded)
        self.bytes_per_item = float(latents.shape[1] * latents.shape[2] * 2) if latents.ndim == 3 else 0.0

    @classmethod
    def load_shards(cls, folder: Path, keys: list[str]) -> "LatentIndex":
        shards = [load_file(str(p)) for p in sorted(folder.glob("shard-*.safetensors"))]
        rows = torch.cat([s["rows"] for s in shards])
        if sorted(rows.tolist()) != list(range(len(keys))):
            raise ValueError(f"{folder}: shards do not cover the {len(keys)} items exactly; delete the folder and "
                             "rebuild")
        lat, emb = torch.cat([s["latents"] for s in shards]), torch.cat([s["embeddings"] for s in shards])
        latents, embeddings = torch.empty_like(lat), torch.empty_like(emb)
        latents[rows], embeddings[rows] = lat, emb
        return cls(keys, latents, embeddings, folder)

    @classmethod
    def load(cls, folder: str | Path, storage: str = "fp16") -> "LatentIndex":
        """The index with its latents as stored in `storage` (decoded to fp16)."""
        folder = Path(folder)
        if not (folder / "meta.json").exists():
            raise FileNotFoundError(f"{folder}: no finished latent index (meta.json missing); run `lmem index`")
        index = cls.load_shards(folder, json.loads((folder / "ids.json").read_text()))
        meta = json.loads((folder / "meta.json").read_text())
        stored = meta.get("storage", {"fp16": {"bytes_per_item": meta["bytes_per_item"]}})
        if storage not in stored:
            raise FileNotFoundError(f"{folder}: no {storage!r} latents (built: {sorted(stored)}); add it to the "
                                    f"compressor's index `storages` and rebuild")
        if storage != "fp16":
            index.latents = decode_latents(load_file(str(folder / f"latents-{storage}.safetensors")),
                                           tuple(index.latents.shape))
        index.bytes_per_item = float(stored[storage]["bytes_per_item"])
        index.nprobe = int(meta.get("nprobe", NPROBE))
        return index

    def pool_rows(self, example: Example) -> list[int]:
        try:
            return [self.row[item_key(example.id, e.id)] for e in example.pool]
        except KeyError as e:
            raise KeyError(f"{self.folder}: example {example.id!r} is not in this index; rebuild it for this "
                           "data") from e

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        """Global-corpus retrieval: (Q, k) row ids by inner product, via FAISS."""
        if self._faiss is None:
            self._faiss = faiss.read_index(str(self.folder / "faiss.index"))
            if hasattr(faiss, "index_cpu_to_all_gpus") and faiss.get_num_gpus() > 0:  # faiss-gpu installed
                self._faiss = faiss.index_cpu_to_all_gpus(self._faiss)
            set_nprobe(self._faiss, self.nprobe)
        _, rows = self._faiss.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--spec", default="{}", help='{"batch_size", "shard_size", "faiss": "flat"|"ivf"|"ivfpq", '
                    '"nlist", "nprobe", "pca", "refine", "storages": ["fp16", "int8", "pq"], "pq_m", "images": '
                    'where image evidence lives}')
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    setup(args.threads)
    spec = parse_spec(args.spec)
    c = IndexConfig.from_dict(spec)  # the defaults, and the checks the profile passed when it loaded
    compressor = load_compressor(args.checkpoint, spec.get("images"))
    meta = build_index(compressor, read_examples(args.data), args.out, c.batch_size, c.shard_size, c.faiss, c.nlist,
                       tuple(c.storages), c.pq_m, c.nprobe, c.pca, c.refine)
    log.info("indexed %d items at %s items/s", meta["n_items"], meta["items_per_second"])


if __name__ == "__main__":
    main()
