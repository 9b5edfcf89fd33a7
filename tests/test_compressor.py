"""The compressor: batch invariance (the real SmolLM2), losses and the latent prompt (plumbing on a tiny model)."""

import torch

from lmem.compressor import CompressorConfig, build_compressor, load_compressor
from lmem.losses import distillation_kl, multi_positive_infonce
from lmem.prompts import encode_latent, encode_text


def test_latent_does_not_depend_on_its_batch(smollm2):
    comp = build_compressor(CompressorConfig(num_mem_tokens=2)).eval()
    short = "Ada lives in Pell."
    longer = ["The Velk River flows north through Amberlin, the old capital of Norrastia, past three mills.",
              "Quillfeather Press, founded in 1891 by Marlow Tessin, is headquartered in the city of Ostbrook."]
    ids = comp.tokenize([short] + longer, 64)
    with torch.no_grad():
        alone = comp.compress(ids[:1])[0]
        batched = comp.compress(ids)[0]  # left-padded beside two longer items
        reordered = comp.compress(ids[::-1])[2]
        q_alone = comp.embed_query(ids[:1])[0]
        q_batched = comp.embed_query(ids)[0]
    assert alone.shape == (2, 576)
    torch.testing.assert_close(batched, alone, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(reordered, alone, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(q_batched, q_alone, atol=1e-4, rtol=1e-4)


def test_adapters_train_separately_and_checkpoint_round_trips(tiny_llama, tmp_path):
    gen_embeddings = 0.1 * torch.randn(100, 48, generator=torch.Generator().manual_seed(0))
    comp = build_compressor(CompressorConfig(model=tiny_llama, lora_r=4, lora_alpha=8), gen_embeddings)
    ids = comp.tokenize(["Ada lives in Pell.", "Bo lives in Arn, far away."], 32)
    latents = comp.compress(ids)
    loss = comp.reconstruction_loss(latents, ids) + comp.embed_query(ids).sum() * 0
    loss.backward()
    grads = {n for n, p in comp.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any(".compress." in n for n in grads) and any(".decode." in n for n in grads)
    assert "mem" in grads
    projected = comp.project(latents)
    assert projected.shape == (2, 1, 48)
    # projected latents start at the generator's embedding scale, not at unit variance
    assert abs(projected.std().item() - gen_embeddings.std().item()) < 0.02
    comp.save(tmp_path / "ckpt")
    again = load_compressor(tmp_path / "ckpt")
    with torch.no_grad():
        torch.testing.assert_close(again.compress(ids), comp.eval().compress(ids))


def test_infonce_and_kl_hand_cases():
    q = torch.tensor([[1.0, 0.0]])
    cands = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    positive = torch.tensor([[True, False, False]])
    allowed = torch.tensor([[True, True, False]])
    loss = multi_positive_infonce(q, cands, positive, allowed, temperature=1.0)
    expected = -torch.log(torch.exp(torch.tensor(1.0)) / (torch.exp(torch.tensor(1.0)) + 1))
    torch.testing.assert_close(loss, expected)
    logits = torch.log(torch.tensor([[[0.7, 0.2, 0.1]]]))
    idx = torch.tensor([[[0, 1, 2]]])
    same = distillation_kl(logits, idx, logits.clone(), torch.ones(1, 1))
    assert abs(same.item()) < 1e-6
    other = distillation_kl(logits, idx, torch.log(torch.tensor([[[0.1, 0.2, 0.7]]])), torch.ones(1, 1))
    s, t = torch.tensor([0.7, 0.2, 0.1]), torch.tensor([0.1, 0.2, 0.7])
    torch.testing.assert_close(other, (t * (t / s).log()).sum())  # KL(teacher || student)


def test_latent_prompt_counts_each_latent_as_one_position(smollm2, base_config):
    tok, _ = smollm2
    cfg = base_config["prompt"]
    p3 = encode_latent(tok, "Where is Ada?", 3, cfg)
    p0 = encode_latent(tok, "Where is Ada?", 0, cfg)
    assert p3.n_slots == 3 and p3.tokens_full == sum(map(len, p3.segments)) + 3
    start = p3.tokens_full - p3.tokens_no_system
    text_before = tok.decode(p3.segments[0][start:])
    assert text_before == "Latent context 1:"  # no lone space token before the latent
    # the label's tokens before a slot are the text prompt's before its first context word
    slots = encode_latent(tok, "Where is Ada?", 1, dict(cfg, latent_label=cfg["context_label"]))
    text = encode_text(tok, "Where is Ada?", ["Ada lives in Pell."], cfg)
    n = len(slots.segments[0])
    assert text.input_ids[:n] == slots.segments[0] and tok.decode(text.input_ids[n:n + 1]) == " Ada"
    labels = sum(len(s) for s in p3.segments[1:-1]) + len(p3.segments[0]) - start
    newline = len(tok("\n", add_special_tokens=False)["input_ids"])
    assert p3.tokens_context == labels + 3 + newline  # label tokens + one position per latent + final newline
    assert p0.tokens_context == 0 and tok.decode(p0.segments[0][-p0.tokens_no_system:]).startswith("Question:")
    p2 = encode_latent(tok, "Where is Ada?", 2, cfg, positions_per_slot=4)
    assert p2.tokens_full == sum(map(len, p2.segments)) + 8
