"""The trainer on a tiny random model (plumbing): a killed-and-resumed run ends with the same weights."""

import csv
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from lmem.train_compressor import Trainer
from lmem.training import load_split


def spec(model, base_config, steps):
    return {
        "compressor": {"model": model, "lora_r": 4, "lora_alpha": 8},
        "generator": dict(base_config["generator"], model=model),
        "prompt": dict(base_config["prompt"], format="fewshot"),
        "seed": 0,
        "train": {"steps": steps, "batch_size": 3, "grad_accum": 2, "eval_every": 3, "save_every": 2,
                  "val_questions": 3, "hard_negatives": 2, "distill_tokens": 3, "distill_topk": 8,
                  "distill_negatives": 1, "warmup_steps": 1},
        "train_data": {"loader": "hotpotqa", "source": {"synth": {"seed": 0, "split": "train", "n_train": 12}}},
        "val_data": {"loader": "hotpotqa", "source": {"synth": {"seed": 0, "split": "dev", "n_dev": 3}}},
    }


def run(s, out, stop_after=None):
    trainer = Trainer(s, out, load_split(s["train_data"], "train"), load_split(s["val_data"], "val"))
    return trainer.train(stop_after)


def test_resume_gives_the_same_weights(tiny_llama, base_config, tmp_path):
    s = spec(tiny_llama, base_config, steps=5)
    full = run(s, tmp_path / "full")
    assert full["step"] == 5
    killed = run(s, tmp_path / "resumed", stop_after=3)
    assert killed["step"] == 3
    resumed = run(s, tmp_path / "resumed")
    assert resumed["step"] == 5
    a = load_file(str(tmp_path / "full/last/compressor.safetensors"))
    b = load_file(str(tmp_path / "resumed/last/compressor.safetensors"))
    init = load_file(str(tmp_path / "full/init/compressor.safetensors"))
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a)
    assert any((a[k] != init[k]).any() for k in a)  # training moved the weights
    log = (tmp_path / "full/train_log.csv").read_text().splitlines()
    assert log[0].startswith("step,contrast,recon,distill,loss,lr,seconds") and len(log) == 6
    assert (tmp_path / "full/val_log.csv").exists() and (tmp_path / "full/best/compressor.json").exists()


def test_losses_can_be_switched_off(tiny_llama, base_config, tmp_path):
    s = spec(tiny_llama, base_config, steps=1)
    s["train"].update(w_recon=0, w_distill=0)
    run(s, tmp_path / "ablate")
    header = (tmp_path / "ablate/train_log.csv").read_text().splitlines()[0]
    assert header.startswith("step,contrast,loss")


def test_unknown_training_option_is_an_error(tiny_llama, base_config, tmp_path):
    s = spec(tiny_llama, base_config, steps=1)
    s["train"]["stepz"] = 3
    with pytest.raises(ValueError, match="unknown training options"):
        run(s, tmp_path / "bad")


def test_distillation_on_the_gold_answer(tiny_llama, base_config, tmp_path):
    """distill_target: gold_answer teacher-forces the text teacher on the reference answer (then the turn's end)."""
    s = spec(tiny_llama, base_config, steps=1)
    s["train"].update(distill_target="gold_answer", distill_tokens=4)
    trainer = Trainer(s, tmp_path, load_split(s["train_data"], "train"), load_split(s["val_data"], "val"))
    tok = trainer.generator.tokenizer
    for item, ids in zip(trainer.items, trainer.teacher["answers"]):
        reference = tok(item.example.answers[0], add_special_tokens=False)["input_ids"][:3]
        assert tok.decode(ids[:-1]) == tok.decode(reference)
        assert ids[-1] == tok.eos_token_id and len(ids) <= 4
    n = len(trainer.teacher["answers"][0])
    assert (trainer.teacher["logprobs"][0, :n] > -1e4).all() and (trainer.teacher["logprobs"][0, n:] == -1e4).all()
    assert trainer.train()["step"] == 1
    s["train"]["distill_target"] = "oracle"
    with pytest.raises(ValueError, match="distill_target must be"):
        Trainer(s, tmp_path / "bad", load_split(s["train_data"], "train"), load_split(s["val_data"], "val"))


def test_gradient_clip_is_the_training_option():
    """optimizer_step clips to the trainer's `max_grad_norm` (1.0 by default in all three trainers)."""
    from lmem.options import TrainConfig, VisionTrainConfig, XragTrainConfig
    from lmem.training import optimizer_step

    assert TrainConfig().max_grad_norm == XragTrainConfig().max_grad_norm == VisionTrainConfig().max_grad_norm == 1.0
    for norm in (0.5, 2.0):
        w = torch.nn.Parameter(torch.zeros(4))
        opt = torch.optim.SGD([w], lr=1.0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
        w.grad = torch.full((4,), 10.0)  # norm 20
        optimizer_step([w], opt, sched, norm)
        assert w.detach().norm().item() == pytest.approx(norm, rel=1e-5) and w.grad is None
    assert TrainConfig.from_dict({"max_grad_norm": 0.3, "latent_stats_items": 64}).latent_stats_items == 64


def test_reading_warmup_distils_from_the_gold_latents_alone(tiny_llama, base_config, tmp_path, monkeypatch):
    """Before step `reading_warmup` the student reads its gold latents only; from it, distill_negatives more."""
    import random

    s = spec(tiny_llama, base_config, steps=4)
    s["train"].update(reading_warmup=2, distill_negatives=1, w_recon=0, w_contrast=0)
    trainer = Trainer(s, tmp_path, load_split(s["train_data"], "train"), load_split(s["val_data"], "val"))
    seen = []
    forced = trainer.generator.forced_logits

    def spy(prompts, vectors, answers, n):
        seen.append([v.shape[0] for v in vectors])
        return forced(prompts, vectors, answers, n)

    monkeypatch.setattr(trainer.generator, "forced_logits", spy)
    idx = trainer.batch(0)
    gold = [len(trainer.items[i].positives) for i in idx]
    for step in (0, 1, 2, 3):
        trainer.losses(idx, random.Random(0), step)
    assert seen == [gold, gold, [g + 1 for g in gold], [g + 1 for g in gold]]


def test_distill_types_reads_only_those_questions_and_the_rest_train_retrieval(tiny_llama, base_config, tmp_path,
                                                                              monkeypatch):
    """distill_types: [single]: the student answers (distillation and answer cross-entropy) only the micro-batch's
    one-hop questions; every question's evidence is in the contrastive loss; a micro-batch with none gives a zero
    reading loss that still backpropagates, with the same loss columns."""
    import random

    s = spec(tiny_llama, base_config, steps=4)
    s["train_data"]["source"]["synth"]["single_fraction"] = 0.5
    s["train"].update(distill_types=["single"], w_recon=0)
    trainer = Trainer(s, tmp_path, load_split(s["train_data"], "train"), load_split(s["val_data"], "val"))
    types = [it.example.metadata["type"] for it in trainer.items]
    assert "single" in types and {"bridge", "comparison"} & set(types)
    questions = []
    forced = trainer.generator.forced_logits

    def spy(prompts, vectors, answers, n):
        questions.append(len(prompts))
        return forced(prompts, vectors, answers, n)

    monkeypatch.setattr(trainer.generator, "forced_logits", spy)
    mixed = [types.index("single"), next(i for i, t in enumerate(types) if t != "single")]
    out = trainer.losses(mixed, random.Random(0), 0)
    assert questions == [1] and out["distill"].item() > 0 and out["contrast"].item() > 0
    two_hop = [i for i, t in enumerate(types) if t != "single"][:2]
    out = trainer.losses(two_hop, random.Random(0), 0)
    assert questions == [1] and set(out) == {"contrast", "distill"} and out["distill"].item() == 0
    sum(out.values()).backward()  # the zero reading loss is in the graph
    trainer.tcfg.distill_types = None
    trainer.losses(mixed, random.Random(0), 0)
    assert questions == [1, 2]


def test_distill_memory_reads_gold_and_the_best_scored_distractors_in_score_order(tiny_llama, base_config, tmp_path,
                                                                                 monkeypatch):
    """distill_memory: K: the student reads K latents, its gold ones and the step's highest-scoring others (one per
    text, never a copy of a gold text), in the query's score order, as inference gives its top-k; during the
    reading warm-up the gold ones alone, in score order."""
    import random

    K = 4
    s = spec(tiny_llama, base_config, steps=4)
    s["train"].update(distill_memory=K, distill_negatives=0, reading_warmup=1, w_recon=0, w_contrast=0)
    trainer = Trainer(s, tmp_path, load_split(s["train_data"], "train"), load_split(s["val_data"], "val"))
    calls, seen = [], []
    memories, forced = trainer._memories, trainer.generator.forced_logits

    def spy_memories(items, evidence, slot, scores, gold_only):
        out = memories(items, evidence, slot, scores, gold_only)
        calls.append((items, evidence, slot, scores, gold_only, out))
        return out

    def spy_forced(prompts, vectors, answers, n):
        seen.append([v.shape[0] for v in vectors])
        return forced(prompts, vectors, answers, n)

    monkeypatch.setattr(trainer, "_memories", spy_memories)
    monkeypatch.setattr(trainer.generator, "forced_logits", spy_forced)
    idx = trainer.batch(0)
    for step in (0, 1):
        trainer.losses(idx, random.Random(0), step)
    assert [c[4] for c in calls] == [True, False]
    for (items, evidence, slot, scores, gold_only, out), sizes in zip(calls, seen):
        assert sizes == [len(m) for m in out]
        for b, (it, rows) in enumerate(zip(items, out)):
            gold = {slot[(b, e.id)] for e in it.positives}
            assert gold <= set(rows)
            assert [float(scores[b, r]) for r in rows] == sorted((float(scores[b, r]) for r in rows), reverse=True)
            texts = [evidence[r].text for r in rows]
            assert len(set(texts)) == len(texts)
            distinct = len({e.text for e in evidence})
            assert len(rows) == (len(gold) if gold_only else max(len(gold), min(K, distinct)))
            if not gold_only:  # the others are the best-scored of what was left
                left = [float(scores[b, r]) for r in range(len(evidence))
                        if r not in rows and evidence[r].text not in texts]
                worst = min((float(scores[b, r]) for r in rows if r not in gold), default=float("inf"))
                assert all(x <= worst for x in left)
    assert seen[1] != seen[0]  # the warm-up reads fewer latents


def test_a_finished_or_foreign_checkpoint_is_not_resumed(tiny_llama, base_config, tmp_path):
    """`snakemake --forcerun` deletes a finished run's outputs but not last/: the rerun trains again from step 0
    (it used to resume at the last step, train nothing and write no best/). A last/ made with another spec is not
    resumed either."""
    s = spec(tiny_llama, base_config, steps=3)
    out = tmp_path / "run"
    assert run(s, out)["step"] == 3
    first = load_file(str(out / "best/compressor.safetensors"))
    for f in ("best", "init"):  # what the rule declares as outputs (init/, best/ and the log) is removed
        shutil.rmtree(out / f)
    (out / "train_log.csv").unlink()
    assert run(s, out)["step"] == 3
    again = load_file(str(out / "best/compressor.safetensors"))
    assert all((first[k] == again[k]).all() for k in first)  # the same run again, from step 0
    assert len((out / "train_log.csv").read_text().splitlines()) == 4  # three steps and the header
    run(s, tmp_path / "other", stop_after=2)  # killed at step 2 of 3 ...
    changed = dict(s, train=dict(s["train"], lr=3e-4))
    assert run(changed, tmp_path / "other")["step"] == 3  # ... and rerun with another learning rate
    run(changed, tmp_path / "fresh")
    a = load_file(str(tmp_path / "other/last/compressor.safetensors"))
    b = load_file(str(tmp_path / "fresh/last/compressor.safetensors"))
    assert all((a[k] == b[k]).all() for k in a)  # the changed run from step 0, not the old one's last step
    assert len((tmp_path / "other/train_log.csv").read_text().splitlines()) == 4


@pytest.mark.parametrize("stage", ["compressor", "xrag", "vision"])
def test_the_rules_command_publishes_finished_work_and_a_forced_rerun_starts_over(stage, tiny_llama, base_config,
                                                                                  tmp_path):
    """What each train_* rule runs: train in the partial folder, move the finished work into its folder (never
    last/); a killed run publishes nothing. `snakemake --forcerun` deletes the rule's outputs: the rerun trains from
    step 0 and succeeds (the end-to-end test does this through Snakemake for the compressor)."""
    from test_multimodal import vision_train_spec
    from test_xrag import spec as xrag_spec

    from lmem import train_compressor, train_vision, train_xrag

    module, s, outputs = {
        "compressor": (train_compressor, spec(tiny_llama, base_config, steps=2),
                       ["best/compressor.safetensors", "init/compressor.safetensors", "train_log.csv"]),
        "xrag": (train_xrag, xrag_spec(tiny_llama, base_config), ["projector.safetensors", "train_log.csv"]),
        "vision": (train_vision, vision_train_spec(tiny_llama, base_config, steps=2),
                   ["projector.safetensors", "train_log.csv"]),
    }[stage]
    partial, final = tmp_path / "partial", tmp_path / "final"
    args = ["--spec", json.dumps(s), "--out", str(partial), "--publish", str(final)]
    module.main(args + ["--stop-after", "1"])
    assert (partial / "last").is_dir() and not final.exists()  # killed: half-done work stays apart
    module.main(args)  # resumes, finishes, publishes
    assert not partial.exists() and not (final / "last").exists() and not (final / "teacher.pt").exists()
    assert all((final / o).exists() for o in outputs)
    first = [r["step"] for r in csv.DictReader((final / "train_log.csv").open())]
    for o in outputs:  # what --forcerun removes: the rule's declared outputs
        (final / o).unlink()
    module.main(args)
    again = [r["step"] for r in csv.DictReader((final / "train_log.csv").open())]
    assert again == first and again[0] == "1" and all((final / o).exists() for o in outputs)


def test_a_second_stage_starts_from_the_first_stages_best(tiny_llama, base_config, tmp_path):
    first = spec(tiny_llama, base_config, steps=2)
    run(first, tmp_path / "first")
    second = dict(spec(tiny_llama, base_config, steps=2), init_dir=str(tmp_path / "first/best"))
    run(second, tmp_path / "second")
    best = load_file(str(tmp_path / "first/best/compressor.safetensors"))
    start = load_file(str(tmp_path / "second/init/compressor.safetensors"))
    fresh = load_file(str(tmp_path / "first/init/compressor.safetensors"))
    assert start.keys() == best.keys()
    assert all((start[k] == best[k]).all() for k in best)  # weights and latent statistics: the first stage's
    assert any((fresh[k] != best[k]).any() for k in best)  # (not what a first stage starts from)
    last = load_file(str(tmp_path / "second/last/compressor.safetensors"))
    assert any((last[k] != start[k]).any() for k in start)  # and the second stage trains on
