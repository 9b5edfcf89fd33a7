"""The losses are the right ones and the compressor learns: exact reconstruction targets, the forward KL, InfoNCE
without false negatives, checkpoint choice, and a short fit of the real SmolLM2 compressor that rebuilds its
sentences from their latents (not a random model: the point is that it learns)."""

import time

import torch

from lmem.compressor import CompressorConfig, build_compressor
from lmem.losses import distillation_kl
from lmem.records import Evidence, Example
from lmem.train_compressor import better, false_negatives
from lmem.training import TrainItem


def test_reconstruction_targets_are_aligned(tiny_llama):
    """Position p of [latent | BOS | x_1..x_{n-1}] is scored against the token it predicts: BOS -> x_1,
    x_j -> x_{j+1}; so the token fed at p + 1 is the label at p, and the loss is the plain cross-entropy of the
    logits at p against labels[p] (no second shift)."""
    comp = build_compressor(CompressorConfig(model=tiny_llama, lora_r=4, lora_alpha=8, num_mem_tokens=2))
    ids = comp.tokenize(["Ada lives in Pell.", "Bo lives in Arn, far away from the sea.", "Hi"], 32)
    latents = comp.compress(ids)
    embeds, mask, labels = comp.reconstruction_inputs(latents, ids)
    emb = comp.lm.get_input_embeddings()
    T, bos = 2, comp._bos()
    for i, seq in enumerate(ids):
        n = len(seq)
        assert labels[i, :T].tolist() == [-100] * T
        assert labels[i, T:T + n].tolist() == seq and (labels[i, T + n:] == -100).all()
        assert mask[i].sum() == T + n
        torch.testing.assert_close(embeds[i, T], emb.weight[bos])  # BOS at position T predicts x_1
        for p in range(T, T + n - 1):  # teacher forcing: what position p predicts is fed at p + 1
            torch.testing.assert_close(embeds[i, p + 1], emb.weight[labels[i, p]])
    comp.use("decode")
    logits = comp.lm(inputs_embeds=embeds, attention_mask=mask).logits.float()
    logp = logits.log_softmax(-1)
    picked = [-logp[i, p, labels[i, p]] for i in range(len(ids)) for p in range(labels.shape[1]) if labels[i, p] >= 0]
    torch.testing.assert_close(comp.reconstruction_loss(latents, ids), torch.stack(picked).mean())


def test_kl_is_forward_and_sees_mass_outside_the_top_k():
    V = 10
    gen = torch.Generator().manual_seed(0)
    student = torch.randn(2, 3, V, generator=gen)
    teacher = torch.randn(2, 3, V, generator=gen).log_softmax(-1)
    mask = torch.ones(2, 3)
    # the full distribution (K = V): exactly KL(teacher || student), as torch's kl_div(student_logp, teacher_p)
    full = teacher.topk(V, dim=-1)
    expected = torch.nn.functional.kl_div(student.log_softmax(-1), teacher.exp(), reduction="none").sum(-1).mean()
    torch.testing.assert_close(distillation_kl(student, full.indices, full.values, mask), expected)
    assert expected > 0 and distillation_kl(teacher, full.indices, full.values, mask).abs() < 1e-5
    # top-k with a tail bucket: zero for a student that is the teacher, also with K < V
    top = teacher.topk(3, dim=-1)
    assert distillation_kl(teacher.clone(), top.indices, top.values, mask).abs() < 1e-5
    # a student with its mass outside the teacher's top 2, in the same 2:1 ratio inside them: the old
    # renormalised KL(student || teacher) over the top-k was 0 for it; the forward KL is large
    t = torch.log(torch.tensor([[[0.6, 0.3] + [0.1 / 8] * 8]]))
    s = torch.log(torch.tensor([[[0.02, 0.01] + [0.97 / 8] * 8]]))
    idx = torch.tensor([[[0, 1]]])
    kl = distillation_kl(s, idx, t[..., :2], torch.ones(1, 1))
    p = torch.tensor([0.6, 0.3, 0.1])
    q = torch.tensor([0.02, 0.01, 0.97])
    torch.testing.assert_close(kl, (p * (p / q).log()).sum())
    assert kl > 2.0
    # masked positions do not count
    kl2 = distillation_kl(torch.cat([s, t]), torch.cat([idx, idx]), torch.cat([t[..., :2], t[..., :2]]),
                          torch.tensor([[0.0], [1.0]]))
    assert kl2.abs() < 1e-5


def test_infonce_masks_candidates_equal_to_a_positive():
    def ev(i, text, gold=True):
        return Evidence(id=f"e{i}", text=text, title="", gold=gold)

    shared = "Ada Vell works for Kellan Press."
    a = TrainItem(Example(id="a", benchmark="s", question="qa", answers=["x"], pool=[]), [ev(0, shared)], [])
    b = TrainItem(Example(id="b", benchmark="s", question="qb", answers=["y"], pool=[]),
                  [ev(1, shared), ev(2, "Kellan Press is in Lima.")], [ev(3, "Bo is a pilot.", False)])
    evidence = [a.positives[0], b.positives[0], b.positives[1], b.negatives[0]]
    positive = torch.tensor([[True, False, False, False], [False, True, True, False]])
    masked = false_negatives([a, b], evidence, positive)
    # a's positive text is b's first positive (slot 1): not a negative of a; and slot 0 is not one of b's
    assert masked.tolist() == [[False, True, False, False], [True, False, False, False]]
    # the same item drawn twice in a batch: each copy's positive is masked for the other
    twice = false_negatives([a, a], [a.positives[0], a.positives[0]], torch.tensor([[True, False], [False, True]]))
    assert twice.tolist() == [[False, True], [True, False]]


def test_best_checkpoint_breaks_ties_by_recall_then_the_later_step():
    first = {"val_f1": 0.0, "val_recall": 0.53, "step": 40}
    assert better({"val_f1": 0.0, "val_recall": 0.65}, first)  # the F1 tie of issue 11: recall decides
    assert better({"val_f1": 0.0, "val_recall": 0.53}, first)  # a full tie: the later step
    assert not better({"val_f1": 0.0, "val_recall": 0.50}, first)
    assert better({"val_f1": 2.5, "val_recall": 0.10}, first) and better({"val_f1": 1.0, "val_recall": 0.0}, None)


def test_the_real_compressor_learns_to_rebuild_sentences_from_their_latents():
    """SmolLM2-135M's first 10 layers (the profiles' compressor), float32: after 60 steps on six sentences the
    `decode` adapter rebuilds them from their latents by greedy decoding, and the loss falls by orders of magnitude.
    (A reconstruction that predicts the token after next, as the first-round code did, cannot pass this.)"""
    torch.manual_seed(0)
    comp = build_compressor(CompressorConfig(num_layers=10, lora_dropout=0.0))
    sentences = ["Talo Brennik was born in the city of Oslo.", "Veska Mirrow is a glassblower.",
                 "Dranfield Optics was founded in 1904.", "Pim Ostrava works for Kellan Press.",
                 "Kellan Press is headquartered in Lima.", "Sorrel Vant was born in 1873."]
    ids = comp.tokenize(sentences, 64)
    params = [p for p in comp.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-3)
    comp.train()
    losses, start = [], time.time()
    for _ in range(60):
        loss = comp.reconstruction_loss(comp.compress(ids), ids)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    comp.eval()
    with torch.no_grad():
        rebuilt = comp.reconstruct(comp.compress(ids), max(map(len, ids)))
    exact = [r[:len(i)] == i for r, i in zip(rebuilt, ids)]
    texts = [comp.tokenizer.decode(r[:len(i)]) for r, i in zip(rebuilt, ids)]
    print(f"reconstruction loss {losses[0]:.2f} -> {losses[-1]:.4f} nats/token in {time.time() - start:.0f} s; "
          f"rebuilt {sum(exact)}/6: {texts}")
    assert sum(exact) >= 5, texts
    assert losses[-1] < 0.01 * losses[0]
