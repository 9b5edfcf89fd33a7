"""The VLM runner on a small randomly initialised LLaVA-1.5-style model (plumbing, never for numbers): images go in
the prompt per evidence item, and visual tokens are what the processor expands (576 per 336px image)."""

import pytest
import torch

from lmem.records import Evidence

TEMPLATE = ("{% for m in messages %}{{ m['role'].upper() }}: {% for c in m['content'] %}{% if c['type'] == 'image' %}"
            "<image>{% else %}{{ c['text'] }}{% endif %}{% endfor %}\n{% endfor %}"
            "{% if add_generation_prompt %}ASSISTANT:{% endif %}")


@pytest.fixture(scope="module")
def tiny_llava(smollm2):
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    tok, _ = smollm2
    tok = type(tok).from_pretrained(tok.name_or_path)
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    image_id = tok.convert_tokens_to_ids("<image>")
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}),
        tokenizer=tok, patch_size=14, vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=TEMPLATE)
    cfg = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                       image_size=336, patch_size=14),
        text_config=LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                num_attention_heads=2, num_key_value_heads=2, pad_token_id=tok.pad_token_id),
        image_token_index=image_id, vision_feature_select_strategy="default", vision_feature_layer=-1)
    torch.manual_seed(0)
    return processor, LlavaForConditionalGeneration(cfg)


def test_visual_tokens_are_what_the_processor_expands(tiny_llava, base_config):
    from PIL import Image

    from lmem.vlm import VLMGenerator

    processor, model = tiny_llava
    gen = VLMGenerator({"max_new_tokens": 3, "batch_size": 2}, processor, model)
    pics = {"a": Image.new("RGB", (60, 40), (200, 0, 0)), "b": Image.new("RGB", (30, 30), (0, 0, 200))}
    evidence = [Evidence("a", "a red square", kind="image", title="Red", image="a"),
                Evidence("t", "The square is red."),
                Evidence("b", "a blue square", kind="image", image="b")]
    prompt = gen.encode("What colour is the square?", evidence, base_config["prompt"], lambda e: pics[e.image])
    ids = processor(text=[prompt.text], images=prompt.images, return_tensors="pt")["input_ids"][0]
    assert prompt.tokens_visual == 2 * 576 == int((ids == gen.image_token_id).sum())
    assert prompt.tokens_full == len(ids)
    assert prompt.tokens_full > prompt.tokens_no_system > prompt.tokens_context > prompt.tokens_visual
    text_only = gen.encode("What colour is the square?", evidence[1:2], base_config["prompt"], lambda e: None)
    assert text_only.tokens_visual == 0 and 0 < text_only.tokens_context < 20
    closed = gen.encode("What colour is the square?", [], base_config["prompt"], lambda e: None)
    assert closed.tokens_context == 0
    answers = gen.generate([prompt, text_only, closed])
    assert len(answers) == 3 and all(isinstance(a, str) for a in answers)


@pytest.fixture(scope="module")
def tiny_llava_dir(tiny_llava, tmp_path_factory):
    """The tiny LLaVA saved as a model folder (what a hub snapshot of llava-hf/llava-1.5-7b-hf looks like)."""
    processor, model = tiny_llava
    folder = tmp_path_factory.mktemp("tiny_llava")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return str(folder)


VQA = {"loader": "webqa", "source": {"synth_vqa": {"seed": 0, "split": "train", "n_train": 4, "n_dev": 2}}}


def test_vlm_generator_answers_raw_images_and_latents(tiny_llava_dir, base_config):
    """The paper's multimodal generator path: images of a benchmark's pool through the processor (counted), and
    latent prompts through its language model from input embeddings."""
    from lmem.data import load_examples
    from lmem.prompts import encode_latent
    from lmem.vlm import VLMGenerator, make_generator

    gen = make_generator({"model": tiny_llava_dir, "kind": "vlm", "prefer": "package", "dtype": "float32",
                          "max_new_tokens": 3, "batch_size": 2})
    assert isinstance(gen, VLMGenerator)
    ex = load_examples("v", VQA).examples[0]
    prompt = gen.encode_evidence(ex.question, ex.pool[:2], base_config["prompt"])
    assert prompt.tokens_visual == 2 * 576 and [e.id for e in prompt.kept] == [e.id for e in ex.pool[:2]]
    latent = encode_latent(gen.tokenizer, ex.question, 2, base_config["prompt"])
    latents = torch.randn(2, gen.model.get_input_embeddings().weight.shape[1]) * 0.02
    assert len(gen.generate([prompt])) == 1 and len(gen.generate_latent([latent], [latents])) == 1
    short = dict(gen.cfg, max_input_tokens=prompt.tokens_full - 1)
    gen.cfg, gen.max_input_tokens = short, prompt.tokens_full - 1
    assert gen.encode_evidence(ex.question, ex.pool[:2], base_config["prompt"]).n_dropped == 1


def test_vlm_compressor_reads_images_with_its_own_vision_tower(tiny_llava_dir, base_config, tmp_path):
    """A LLaVA-style compressor: LoRA on the language model only, image latents from the VLM's own visual tokens
    (batch-invariant), and training against a VLM teacher that sees the real image."""
    from lmem.compressor import CompressorConfig, build_compressor
    from lmem.data import load_examples
    from lmem.records import Evidence
    from lmem.train_compressor import Trainer
    from lmem.training import load_split

    comp = build_compressor(CompressorConfig(model=tiny_llava_dir, kind="vlm", lora_r=4, lora_alpha=8,
                                             generator_hidden=32)).eval()
    lora = [n for n, _ in comp.peft.named_parameters() if "lora_" in n]
    assert lora and not any("vision_tower" in n for n in lora)
    pool = load_examples("v", VQA).examples[0].pool
    text = Evidence(id="t", text="A text fact that is longer than the image's caption, to pad the batch " * 2)
    with torch.no_grad():
        ids, prefixes = comp.evidence_inputs([pool[0], text])
        assert prefixes[0].shape == (576, 32) and prefixes[1] is None
        alone = comp.compress(ids[:1], prefixes[:1])[0]
        batched = comp.compress(ids, prefixes)[0]
    torch.testing.assert_close(alone, batched, atol=1e-4, rtol=1e-4)

    spec = {"compressor": {"model": tiny_llava_dir, "kind": "vlm", "lora_r": 4, "lora_alpha": 8},
            "generator": {"model": tiny_llava_dir, "kind": "vlm", "prefer": "package", "dtype": "float32",
                          "max_new_tokens": 3, "batch_size": 2, "max_input_tokens": 4096},
            "prompt": base_config["prompt"], "seed": 0,
            "train": {"steps": 1, "batch_size": 1, "eval_every": 1, "save_every": 1, "val_questions": 1,
                      "hard_negatives": 1, "distill_tokens": 2, "distill_topk": 4, "warmup_steps": 0,
                      "distill_target": "gold_answer", "w_answer": 1.0, "w_image": 1.0},
            "train_data": dict(VQA, limit=2), "val_data": dict(VQA, limit=1)}
    trainer = Trainer(spec, tmp_path, load_split(spec["train_data"], "train"), load_split(spec["val_data"], "v"))
    assert trainer.teacher["indices"].shape[:2] == (2, 2)
    trainer.train()
    assert (tmp_path / "best/compressor.safetensors").exists()
    assert "image" in (tmp_path / "train_log.csv").read_text().splitlines()[0]
