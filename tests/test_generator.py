import pytest
import torch

from lmem.generator import Generator
from lmem.prompts import encode_latent, encode_text


@pytest.fixture(scope="module")
def generator(base_config):
    return Generator(dict(base_config["generator"], max_new_tokens=12, batch_size=3))


@pytest.fixture(scope="module")
def base_config():
    from lmem.config import validate_config

    return validate_config({"name": "t", "benchmarks": {"s": {"loader": "hotpotqa", "source": {"synth": {}}}},
                            "methods": {"oracle": {}}})


def test_real_model_answers_and_batching_is_deterministic(generator, base_config):
    tok = generator.tokenizer
    questions = ["What is the capital of France?", "Where does Ada live?", "What colour is the sky on a clear day?",
                 "Who wrote the letters?"]
    contexts = [[], ["Ada lives in Pell, a small town.", "Bo lives in Arn."], [], ["The letters were written by Bo."]]
    prompts = [encode_text(tok, q, c, base_config["prompt"]) for q, c in zip(questions, contexts)]
    out = generator.generate(prompts)  # sorted by length into batches of 3: left padding beside longer prompts
    assert "Paris" in out[0] and "Pell" in out[1]
    assert all(len(tok(o)["input_ids"]) <= 12 for o in out)
    # each prompt alone (no padding) gets the answer it got inside a padded batch
    assert [generator.generate([p])[0] for p in prompts] == out


def test_latent_generation_alone_equals_batched(generator, base_config):
    """Latent prompts (input embeddings) of different lengths: alone and inside a left-padded batch alike."""
    tok = generator.tokenizer
    emb = generator.model.get_input_embeddings().weight.detach()
    words = [" Pell", " Paris", " Arn", " Oslo"]
    vectors = [emb[tok(w, add_special_tokens=False)["input_ids"][0]][None] for w in words]
    questions = ["Where does Ada live?", "What is the capital of France, the country?", "Where?", "Which city?"]
    counts = [1, 1, 2, 3]
    prompts = [encode_latent(tok, q, n, base_config["prompt"]) for q, n in zip(questions, counts)]
    latents = [torch.cat(vectors[:n]) for n in counts]
    batched = generator.generate_latent(prompts, latents)
    alone = [generator.generate_latent([p], [v])[0] for p, v in zip(prompts, latents)]
    assert alone == batched and len(set(batched)) > 1


def test_a_base_models_answer_is_its_first_line(tiny_llama, base_config):
    from lmem.generator import Generator

    gen = Generator(dict(base_config["generator"], model=tiny_llama))
    ids = gen.tokenizer("Paris\nContext 2: Paris is big", add_special_tokens=False)["input_ids"]
    assert gen.decode(ids) == "Paris\nContext 2: Paris is big"  # a chat model's answer is kept whole
    gen.tokenizer.chat_template = None  # a base model (plain template): it would ramble on past its answer
    assert gen.decode(ids) == "Paris"
