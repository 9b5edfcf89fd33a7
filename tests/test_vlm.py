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
