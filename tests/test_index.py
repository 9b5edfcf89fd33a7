"""The latent index and latent-memory QA, end to end on a tiny random model (plumbing only)."""

import math

import pytest
import torch

from lmem import baselines
from lmem.compressor import CompressorConfig, build_compressor
from lmem.data import load_examples
from lmem.generator import Generator
from lmem.index import LatentIndex, build_index
from lmem.options import IndexConfig


def synth(n):
    return load_examples("synth", {"loader": "hotpotqa", "source": {"synth": {"seed": 2, "n_test": n}}}).examples


def test_index_round_trip_resume_and_latent_memory(tiny_llama, base_config, tmp_path):
    examples = synth(4)
    comp = build_compressor(CompressorConfig(model=tiny_llama, lora_r=4, lora_alpha=8, generator_hidden=32)).eval()
    ckpt = tmp_path / "ckpt"
    comp.save(ckpt)
    meta = build_index(comp, examples, tmp_path / "index", batch_size=16, shard_size=50)
    n = sum(len(ex.pool) for ex in examples)
    assert meta["n_items"] == n and meta["shards"] == -(-n // 50) and meta["bytes_per_item"] == 1 * 32 * 2
    index = LatentIndex.load(tmp_path / "index")
    rows = index.pool_rows(examples[1])
    direct = comp.compress(comp.tokenize([e.text for e in examples[1].pool], 64))
    torch.testing.assert_close(index.latents[rows].float(), direct, atol=2e-3, rtol=2e-3)  # stored as fp16
    # resume: a missing shard is rebuilt, the others are reused
    (tmp_path / "index" / "shard-00001.safetensors").unlink()
    build_index(comp, examples, tmp_path / "index", batch_size=16, shard_size=50)
    torch.testing.assert_close(LatentIndex.load(tmp_path / "index").latents, index.latents)

    generator = Generator(dict(base_config["generator"], model=tiny_llama, max_new_tokens=4))
    for retrieval in ("pool", "global"):
        method = baselines.get("latent_memory")(
            {"checkpoint_dir": str(ckpt), "index_dir": str(tmp_path / "index"), "retrieval": retrieval},
            base_config, label="latent_memory")
        preds = method.run(examples, generator, 3)
        assert len(preds) == 4 and all(len(p.retrieved_ids) == 3 for p in preds)
        text_len = generator.tokenizer("Latent context 1: ", add_special_tokens=False)["input_ids"]
        assert all(p.tokens_context >= 3 * (len(text_len) + 1) for p in preds)
        assert method.bytes_per_item == 64
    # cross-family reads the same index globally: each question gets k distinct items, others' never gold
    cross = baselines.get("cross_family")({"checkpoint_dir": str(ckpt), "index_dir": str(tmp_path / "index"),
                                           "retrieval": "global"}, base_config, label="cross_family")
    for ex, ev in zip(examples, cross.select(examples, 3)):
        assert len(ev) == 3 and all(not e.gold for e in ev if "/" in e.id)
    # global: each distinct item once, however many pools hold it
    texts = {f"{ex.id}/{e.id}": e.text for ex in examples for e in ex.pool}
    for p, ex in zip(preds, examples):
        own = {e.id: e.text for e in ex.pool}
        got = [own.get(r) or texts[r] for r in p.retrieved_ids]
        assert len(set(got)) == len(got)
    pool_ids = {e.id for e in examples[0].pool}
    assert set(preds[0].retrieved_ids) <= pool_ids | {r for r in preds[0].retrieved_ids if "/" in r}


def test_latent_storage_int8_and_pq(tiny_llama, base_config, tmp_path):
    """The quantized latent forms: written beside the fp16 shards, decoded on load, their bytes counted (codes plus
    the share of scales or codebook), int8 within 1% of fp16; Latent Memory reads the form its entry names."""
    examples = synth(4)
    comp = build_compressor(CompressorConfig(model=tiny_llama, lora_r=4, lora_alpha=8, generator_hidden=32)).eval()
    ckpt = tmp_path / "ckpt"
    comp.save(ckpt)
    meta = build_index(comp, examples, tmp_path / "index", batch_size=16, storages=("fp16", "int8", "pq"), pq_m=8)
    n = meta["n_items"]
    assert meta["storage"]["fp16"]["bytes_per_item"] == 64
    assert meta["storage"]["int8"]["bytes_per_item"] == pytest.approx(32 + 32 * 4 / n, abs=0.01)
    assert meta["storage"]["int8"]["relative_error"] < 0.01
    nbits = min(8, int(math.log2(n)))
    assert meta["storage"]["pq"]["bytes_per_item"] == pytest.approx(math.ceil(8 * nbits / 8) + (2 ** nbits) * 32 * 4 / n, abs=0.01)
    fp16 = LatentIndex.load(tmp_path / "index")
    for storage, tol in (("int8", 0.02), ("pq", 1.0)):
        index = LatentIndex.load(tmp_path / "index", storage)
        assert index.latents.shape == fp16.latents.shape and index.latents.dtype == torch.float16
        rel = (index.latents.float() - fp16.latents.float()).norm() / fp16.latents.float().norm()
        assert rel < tol and index.bytes_per_item == meta["storage"][storage]["bytes_per_item"]
    with pytest.raises(FileNotFoundError, match="no 'int8' latents"):
        build_index(comp, examples, tmp_path / "plain", batch_size=16)
        LatentIndex.load(tmp_path / "plain", "int8")
    generator = Generator(dict(base_config["generator"], model=tiny_llama, max_new_tokens=2))
    method = baselines.get("latent_memory")({"checkpoint_dir": str(ckpt), "index_dir": str(tmp_path / "index"),
                                             "storage": "int8"}, base_config, label="latent_memory_int8")
    assert len(method.run(examples, generator, 2)) == 4 and method.bytes_per_item < 64
    # the compact layout: one label, the latents side by side
    compact = baselines.get("latent_memory")({"checkpoint_dir": str(ckpt), "index_dir": str(tmp_path / "index"),
                                              "latent_layout": "compact"}, base_config, label="lm_compact")
    paper = baselines.get("latent_memory")({"checkpoint_dir": str(ckpt), "index_dir": str(tmp_path / "index")},
                                           base_config, label="lm")
    c, p = compact.run(examples, generator, 2), paper.run(examples, generator, 2)
    assert [x.retrieved_ids for x in c] == [x.retrieved_ids for x in p]
    assert all(a.tokens_context < b.tokens_context for a, b in zip(c, p))


def test_ivf_search_probes_the_configured_lists(tiny_llama, tmp_path):
    """An IVF index searches `nprobe` lists per query (index option, kept in meta.json): with every list probed
    it returns exactly what the flat index returns; with one of three, the searched index has nprobe 1."""
    import numpy as np

    examples = synth(4)
    n = sum(len(ex.pool) for ex in examples)
    assert n >= 39 * 3  # FAISS needs 39 training points per list, else the build falls back to flat
    comp = build_compressor(CompressorConfig(model=tiny_llama, lora_r=4, lora_alpha=8, generator_hidden=32)).eval()
    build_index(comp, examples, tmp_path / "flat")
    flat = LatentIndex.load(tmp_path / "flat")
    queries = flat.embeddings[:20].numpy()
    for nprobe in (3, 1):
        meta = build_index(comp, examples, tmp_path / f"ivf{nprobe}", faiss_type="ivf", nlist=3, nprobe=nprobe)
        ivf = LatentIndex.load(tmp_path / f"ivf{nprobe}")
        assert meta["nprobe"] == ivf.nprobe == nprobe
        rows = ivf.search(queries, 5)
        assert ivf._faiss.nprobe == nprobe and ivf._faiss.nlist == 3
        if nprobe == 3:
            np.testing.assert_array_equal(np.sort(rows, 1), np.sort(flat.search(queries, 5), 1))


def test_ivfpq_with_a_pca_rotation(tiny_llama, tmp_path):
    """`faiss: ivfpq` with `pca: P` rotates the retrieval embeddings onto P principal directions and codes them in
    P / 4 one-byte codes; the searched index probes `nprobe` lists and finds most of what flat search finds."""
    import faiss
    import numpy as np

    examples = synth(8)
    assert sum(len(ex.pool) for ex in examples) >= 256  # PQ trains 256 centroids per code
    comp = build_compressor(CompressorConfig(model=tiny_llama, lora_r=4, lora_alpha=8, generator_hidden=32)).eval()
    build_index(comp, examples, tmp_path / "flat")
    flat = LatentIndex.load(tmp_path / "flat")
    queries = flat.embeddings[:20].numpy()
    meta = build_index(comp, examples, tmp_path / "pq", faiss_type="ivfpq", nlist=2, nprobe=2, pca=16)
    index = LatentIndex.load(tmp_path / "pq")
    rows = index.search(queries, 5)
    assert meta["pca"] == 16 and isinstance(index._faiss, faiss.IndexPreTransform)
    ivf = faiss.downcast_index(faiss.extract_index_ivf(index._faiss))
    assert ivf.nprobe == 2 and ivf.nlist == 2 and ivf.pq.M == 4 and ivf.d == 16
    found = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(rows, flat.search(queries, 5))])
    assert found >= 0.6, found
    with pytest.raises(ValueError, match="pca must be 0"):
        IndexConfig.from_dict({"pca": 6})


def test_ivfpq_with_a_refining_second_code(tiny_llama, tmp_path):
    """`faiss: ivfpq` with `refine: R`: FAISS's IVFPQR, a first code of d / 4 bytes and a second of R bytes coding what
    the first leaves; the first code's best are re-ranked by both, so it finds at least what the first code alone
    finds of flat's top 5. A refine that does not divide the coded dimensions is refused, naming the fix. (After a
    PCA rotation onto 16 directions: PQ training on the tiny compressor's 512 dimensions takes minutes here.)"""
    import faiss
    import numpy as np

    examples = synth(8)
    comp = build_compressor(CompressorConfig(model=tiny_llama, lora_r=4, lora_alpha=8, generator_hidden=32)).eval()
    build_index(comp, examples, tmp_path / "flat")
    flat = LatentIndex.load(tmp_path / "flat")
    queries = flat.embeddings[:20].numpy()
    truth = flat.search(queries, 5)
    found = {}
    for refine in (0, 8):
        meta = build_index(comp, examples, tmp_path / f"pq{refine}", faiss_type="ivfpq", nlist=2, nprobe=2, pca=16,
                           refine=refine)
        index = LatentIndex.load(tmp_path / f"pq{refine}")
        found[refine] = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(index.search(queries, 5), truth)])
        assert meta["refine"] == refine
    ivf = faiss.downcast_index(faiss.extract_index_ivf(index._faiss))
    assert isinstance(ivf, faiss.IndexIVFPQR) and ivf.nprobe == 2 and ivf.pq.M == 4 and ivf.refine_pq.M == 8
    assert found[8] >= max(found[0], 0.8), found
    with pytest.raises(ValueError, match="refine 7 must divide the 16 dimensions"):
        build_index(comp, examples, tmp_path / "bad", faiss_type="ivfpq", nlist=2, pca=16, refine=7)
    with pytest.raises(ValueError, match="refine must be 0"):
        IndexConfig.from_dict({"refine": -1})
