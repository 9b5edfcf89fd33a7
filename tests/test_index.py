"""The latent index and latent-memory QA, end to end on a tiny random model (plumbing only)."""

import torch

from lmem import baselines
from lmem.compressor import CompressorConfig, build_compressor
from lmem.data import load_examples
from lmem.generator import Generator
from lmem.index import LatentIndex, build_index


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
    pool_ids = {e.id for e in examples[0].pool}
    assert set(preds[0].retrieved_ids) <= pool_ids | {r for r in preds[0].retrieved_ids if "/" in r}
