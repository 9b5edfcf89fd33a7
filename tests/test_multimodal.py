"""The multimodal path (issue 5): synth-vqa in WebQA's schema, prompts with visual tokens, the composed VLM's vision
module and its trainer, and the compressor on image evidence. Models here are the real EfficientNet-Lite0 and
SmolLM2 tokenizer, with a tiny random llama as LM (plumbing: no number from these tests is reported)."""

import pytest
import torch
from safetensors.torch import load_file

from lmem.data import load_examples
from lmem.data.synth_vqa import COLORS, generate_records, parse_scene, render
from lmem.images import ImageResolver
from lmem.io import InputError
from lmem.prompts import encode_with_images
from lmem.records import Evidence

VQA = {"seed": 0, "n_train": 24, "n_dev": 4, "n_test": 8}


def vqa_spec(split, **kw):
    return {"loader": "webqa", "source": {"synth_vqa": dict(VQA, split=split, **kw)}}


def test_synth_vqa_is_webqa_schema_with_answers_the_image_holds():
    records = [r for _, r in generate_records(dict(VQA, split="test"))]
    assert len(records) == 8 and [r for _, r in generate_records(dict(VQA, split="test"))] == records  # seeded
    assert {r["Qcate"] for r in records} == {"color", "shape", "number", "YesNo"}
    for r in records:
        assert set(r) >= {"Guid", "Q", "A", "Qcate", "split", "img_posFacts", "img_negFacts", "txt_posFacts"}
        (gold,) = r["img_posFacts"]
        shape, color, count, _ = parse_scene(gold["image_id"])
        answer = r["A"][0].strip('"')
        expected = {"color": color, "shape": shape, "number": str(count)}.get(r["Qcate"])
        if expected:
            assert answer == expected
        else:
            asked = next(c for c in COLORS if f" {c}?" in r["Q"])
            assert answer == ("yes" if asked == color else "no")
        assert gold["title"].split("'s")[0] in r["Q"]  # the question names the tile's owner
        assert len(r["img_negFacts"]) == 5
        assert not any(w in gold["caption"] for w in list(COLORS) + ["circle", "square"])  # caption does not tell
    train = {r["Q"] for _, r in generate_records(dict(VQA, split="train"))}
    assert not train & {r["Q"] for r in records}


def test_synth_vqa_loads_through_the_webqa_loader():
    examples = load_examples("synth-vqa", vqa_spec("test")).examples
    ex = examples[0]
    assert ex.metadata["modality"] == "image" and ex.metadata["qcate"] in ("color", "shape", "number", "YesNo")
    assert all(e.kind == "image" and e.image.startswith("synth-vqa:") for e in ex.pool)
    assert len(ex.gold_ids) == 1
    gold = next(e for e in ex.pool if e.gold)
    assert gold.search_text.startswith(gold.title) and gold.text in gold.search_text


def test_render_is_deterministic_and_bad_references_are_clear():
    a, b = render("star-blue-3-17"), render("star-blue-3-17")
    assert a.size == (128, 128) and a.tobytes() == b.tobytes()
    assert a.tobytes() != render("star-red-3-17").tobytes()
    resolve = ImageResolver()
    assert resolve("synth-vqa:circle-red-1-5").tobytes() == render("circle-red-1-5").tobytes()
    with pytest.raises(InputError, match="not a synth-vqa image id"):
        resolve("synth-vqa:blob-red-1-5")
    with pytest.raises(InputError, match="images: {tsv"):
        resolve("imgs.tsv:30000001")
    with pytest.raises(InputError, match="unknown image source"):
        resolve("flickr:1")


def test_visual_tokens_count_as_context(smollm2, base_config):
    tok, _ = smollm2
    prompt_cfg = dict(base_config["prompt"], format="fewshot")
    pool = load_examples("synth-vqa", vqa_spec("test")).examples[0].pool
    one = encode_with_images(tok, "What color?", pool[:1], prompt_cfg, 4096, image_tokens=4)
    three = encode_with_images(tok, "What color?", pool[:3], prompt_cfg, 4096, image_tokens=4)
    assert one.slot_sizes == [4] and three.slot_sizes == [4, 4, 4]
    assert three.tokens_full == sum(map(len, three.segments)) + 12
    def n(text):
        return len(tok(text, add_special_tokens=False)["input_ids"])

    # two more images: their labels, 4 visual tokens each and their title + caption (+-1 token at each seam)
    expected = sum(n(f"Context {i + 1}: ") + 4 + n(f" {e.search_text}\n") for i, e in enumerate(pool[:3]) if i)
    assert abs(three.tokens_context - one.tokens_context - expected) <= 2
    assert three.tokens_full - three.tokens_no_system == one.tokens_full - one.tokens_no_system  # same prefix
    short = encode_with_images(tok, "What color?", pool[:3], prompt_cfg, three.tokens_full - 1, image_tokens=4)
    assert short.n_dropped == 1 and len(short.kept) == 2  # the lowest-ranked image goes first


@pytest.fixture(scope="module")
def vision_dir(tmp_path_factory):
    """An untrained vision module for the tiny llama (hidden 32), saved as the DAG's train_vision saves one."""
    from lmem.vision import Vision, VisionConfig

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("vision")
    Vision(VisionConfig(hidden=32, out_std=0.02)).save(folder)
    return folder


def test_image_latents_do_not_depend_on_the_batch(tiny_llama, vision_dir):
    from lmem.compressor import CompressorConfig, build_compressor

    comp = build_compressor(CompressorConfig(model=tiny_llama, lora_r=4, lora_alpha=8, generator_hidden=32,
                                             vision_dir=str(vision_dir))).eval()
    pool = load_examples("synth-vqa", vqa_spec("test")).examples[0].pool
    text = Evidence(id="t1", text="A much longer text fact that pads the batch " * 3)
    with torch.no_grad():
        ids, prefixes = comp.evidence_inputs([pool[0], text, pool[1]])
        assert prefixes[0].shape == (4, 32) and prefixes[1] is None
        alone = comp.compress(ids[:1], prefixes[:1])[0]
        batched = comp.compress(ids, prefixes)
    torch.testing.assert_close(alone, batched[0], atol=1e-4, rtol=1e-4)
    no_vision = build_compressor(CompressorConfig(model=tiny_llama, lora_r=4, lora_alpha=8, generator_hidden=32))
    with pytest.raises(ValueError, match="no vision module"):
        no_vision.evidence_inputs(pool[:1])


def test_the_generator_needs_a_vision_module_for_images(tiny_llama, base_config):
    from lmem.generator import Generator

    gen = Generator(dict(base_config["generator"], model=tiny_llama))
    pool = load_examples("synth-vqa", vqa_spec("test")).examples[0].pool
    with pytest.raises(InputError, match="reads text only"):
        gen.encode_evidence("What color?", pool[:2], base_config["prompt"])


def vision_train_spec(tiny_llama, base_config, steps):
    return {"grid": 2, "generator": dict(base_config["generator"], model=tiny_llama, max_new_tokens=4),
            "prompt": dict(base_config["prompt"], format="fewshot"), "seed": 0,
            "train": {"steps": steps, "batch_size": 3, "save_every": 2, "val_questions": 2, "warmup_steps": 1},
            "train_data": vqa_spec("train"), "val_data": vqa_spec("dev")}


def test_vision_projector_trains_and_resumes_exactly(tiny_llama, base_config, tmp_path):
    from lmem.training import load_split
    from lmem.train_vision import VisionTrainer
    from lmem.vision import load_vision

    s = vision_train_spec(tiny_llama, base_config, steps=4)

    def run(out, stop_after=None):
        t = VisionTrainer(s, out, load_split(s["train_data"], "train"), load_split(s["val_data"], "val"))
        return t.train(stop_after)

    full = run(tmp_path / "full")
    assert full["step"] == 4 and "val_acc" in full
    run(tmp_path / "resumed", stop_after=3)
    run(tmp_path / "resumed")
    a = load_file(str(tmp_path / "full/projector.safetensors"))
    b = load_file(str(tmp_path / "resumed/projector.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    log = (tmp_path / "full/train_log.csv").read_text().splitlines()
    assert log[0] == "step,answer,lr,seconds" and len(log) == 5
    vision = load_vision(tmp_path / "full")
    assert vision.tokens_per_image == 4 and not any(p.requires_grad for p in vision.projector.parameters())


def image_train_spec(tiny_llama, base_config, vision_dir, **train):
    """A compressor with the (untrained) vision module, trained on synth-vqa with the image losses on."""
    return {"compressor": {"model": tiny_llama, "lora_r": 4, "lora_alpha": 8, "vision_dir": str(vision_dir)},
            "generator": dict(base_config["generator"], model=tiny_llama, max_new_tokens=4),
            "prompt": dict(base_config["prompt"], format="fewshot"), "seed": 0,
            "train": {"eval_every": 2, "val_questions": 2, "distill_tokens": 3, "distill_topk": 8,
                      "distill_negatives": 1, "warmup_steps": 1, "distill_target": "gold_answer", "w_answer": 1.0,
                      "w_image": 1.0, **train},
            "train_data": vqa_spec("train"), "val_data": vqa_spec("dev")}


def test_compressor_trains_on_images_with_image_regression(tiny_llama, base_config, vision_dir, tmp_path):
    from lmem.train_compressor import Trainer
    from lmem.training import load_split

    s = image_train_spec(tiny_llama, base_config, vision_dir, steps=2, batch_size=2, save_every=2, hard_negatives=2)
    trainer = Trainer(s, tmp_path, load_split(s["train_data"], "train"), load_split(s["val_data"], "val"))
    assert trainer.teacher["indices"].shape[:2] == (24, 3)
    trainer.train()
    header = (tmp_path / "train_log.csv").read_text().splitlines()[0]
    assert header.startswith("step,contrast,recon,image,distill,answer,loss")
    state = load_file(str(tmp_path / "best/compressor.safetensors"))
    assert any(k.startswith("image_head") for k in state)
    s["train"]["w_image"] = 1.0
    s["compressor"].pop("vision_dir")
    with pytest.raises(ValueError, match="needs a compressor with a vision module"):
        Trainer(s, tmp_path / "bad", load_split(s["train_data"], "train"), [])


def test_webqa_image_and_text_questions_are_also_scored_apart(shared_data, tmp_path):
    """The real WebQA val questions (image and text queries): one row per subset besides the whole, each with
    WebQA's official accuracy; the report lists them as their own benchmarks."""
    import json

    from lmem.io import write_json, write_jsonl
    from lmem.report import report
    from lmem.score import score

    examples = []
    for name, modality in (("val_img_queries.tsv", "image"), ("val_txt_queries.tsv", "text")):
        spec = {"loader": "webqa", "source": {"path": str(shared_data / "webqa" / name)}, "limit": 6,
                "options": {"modality": modality}}
        examples += load_examples("webqa", spec).examples
    assert {ex.metadata["modality"] for ex in examples} == {"image", "text"}
    data = tmp_path / "webqa.jsonl"
    write_jsonl(data, (ex.to_dict() for ex in examples))
    write_json(tmp_path / "webqa.meta.json", {"benchmark": "webqa", "spec": {}, "sha256": "x", "n_skipped": 0})
    preds = [{"example_id": ex.id, "benchmark": "webqa", "method": "closed_book", "k": "all",
              # right on the image questions (their keyword answers), wrong on the text ones
              "prediction": ex.answers[0] if ex.metadata["modality"] == "image" else "nothing", "answers": ex.answers,
              "retrieved_ids": [], "gold_ids": [], "tokens_full": 10, "tokens_no_system": 5, "tokens_context": 0,
              "metadata": {k: ex.metadata[k] for k in ("qcate", "modality")}} for ex in examples]
    write_jsonl(tmp_path / "pred.jsonl", preds)
    write_json(tmp_path / "pred.meta.json", {"method": "closed_book", "k": "all", "seconds": 1.0, "skipped": None,
                                             "spec": {"seed": 0}, "generator": {"spec": "g", "sha256": "s"}})
    row, per_q = score(str(tmp_path / "pred.jsonl"), str(data), 50, 0)
    assert len(per_q) == 12 and row["n"] == 12 and 0 < row["webqa_acc"] < 100
    image, text = row["subsets"]
    assert (image["benchmark"], image["n"]) == ("webqa[image]", 6) and image["webqa_acc"] > 50
    assert image["webqa_acc"] == pytest.approx(100 * sum(q["webqa_acc"] for q in per_q[:6]) / 6)
    assert (text["benchmark"], text["n"], text["webqa_acc"]) == ("webqa[text]", 6, 0.0)
    (tmp_path / "row.json").write_text(json.dumps(row))
    df = report([str(tmp_path / "row.json")], str(tmp_path / "out"), "tokens_no_system", "f1")
    assert sorted(df["benchmark"]) == ["webqa", "webqa[image]", "webqa[text]"]
    assert "webqa_acc" in (tmp_path / "out/results.md").read_text()


def test_clip_image_retrieval(smollm2, tmp_path):
    """CLIP retrieval ranks a pool's images by image embedding against the question's text embedding (a tiny random
    CLIP: plumbing); a CLIP model that is not available is reported as not run."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from lmem import baselines

    tok, _ = smollm2
    cfg = CLIPConfig(text_config={"vocab_size": len(tok), "hidden_size": 16, "intermediate_size": 32,
                                  "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 77},
                     vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                                    "num_attention_heads": 2, "image_size": 32, "patch_size": 16},
                     projection_dim=8)
    torch.manual_seed(0)
    CLIPModel(cfg).save_pretrained(tmp_path / "clip")
    tok.save_pretrained(tmp_path / "clip")
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        tmp_path / "clip")
    examples = load_examples("synth-vqa", vqa_spec("test")).examples[:3]
    method = baselines.get("clip")({"k": [2], "model": str(tmp_path / "clip")}, {"images": None})
    ranked = method.select(examples, 2)
    assert [len(r) for r in ranked] == [2, 2, 2] and all(e.kind == "image" for r in ranked for e in r)
    assert ranked == method.select(examples, 2)  # deterministic
    glob = baselines.get("clip")({"k": [2], "model": str(tmp_path / "clip"), "retrieval": "global"},
                                 {"images": None}).select(examples, 2)
    assert [len(r) for r in glob] == [2, 2, 2]
    own = [{e.id for e in ex.pool} for ex in examples]
    assert all(e.id in ids or "/" in e.id for r, ids in zip(glob, own) for e in r)
    missing = baselines.get("clip")({"k": [2], "model": str(tmp_path / "no-such-clip")}, {})
    with pytest.raises(baselines.MethodUnavailable, match="not available"):
        missing.select(examples, 2)


def test_large_images_are_downscaled_when_configured():
    big = ImageResolver({"max_side": 64})("synth-vqa:circle-red-2-3")
    assert big.size == (64, 64) and ImageResolver()("synth-vqa:circle-red-2-3").size == (128, 128)


def test_image_compressor_resumes_exactly(tiny_llama, base_config, vision_dir, tmp_path):
    """Killed after step 3 (past a validation) and restarted: the same weights as an uninterrupted run; the
    restarted process computes its image features afresh, in the batches the uninterrupted run used."""
    from lmem.train_compressor import Trainer
    from lmem.training import load_split

    s = image_train_spec(tiny_llama, base_config, vision_dir, steps=5, batch_size=3, save_every=1, hard_negatives=3)

    def run(out, stop_after=None):
        return Trainer(s, out, load_split(s["train_data"], "train"), load_split(s["val_data"], "val")).train(stop_after)

    run(tmp_path / "full")
    run(tmp_path / "resumed", stop_after=3)
    assert run(tmp_path / "resumed")["step"] == 5
    a = load_file(str(tmp_path / "full/last/compressor.safetensors"))
    b = load_file(str(tmp_path / "resumed/last/compressor.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
