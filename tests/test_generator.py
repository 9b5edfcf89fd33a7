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


def _both_paths(generator, run, **cfg):
    """run() under the plain path (transformers' generate on whole prompts) and the prefix-cached one."""
    saved = generator.cfg
    try:
        out = []
        for cached in (False, True):
            generator.cfg = dict(saved, prefix_cache=cached, **cfg)
            out.append(run())
        return out
    finally:
        generator.cfg = saved


def test_prefix_cache_decodes_as_the_plain_path(generator, base_config):
    """Text and latent prompts of different lengths, batched with padding: the same answers, the same teacher
    top-k, with and without a stop string."""
    tok = generator.tokenizer
    questions = ["What is the capital of France?", "Where does Ada live?", "Who wrote the letters?",
                 "Give a numbered list of three fruits.", "What colour is the sky on a clear day?"]
    contexts = [[], ["Ada lives in Pell, a small town.", "Bo lives in Arn."], ["The letters were written by Bo."],
                [], ["The sky is blue."]]
    text = [encode_text(tok, q, c, base_config["prompt"]) for q, c in zip(questions, contexts)]
    emb = generator.model.get_input_embeddings().weight.detach()
    latent = [encode_latent(tok, q, n, base_config["prompt"]) for q, n in zip(questions, [1, 2, 1, 3, 2])]
    vectors = [emb[torch.arange(n) * 97 + 1000 + i] for i, n in enumerate([1, 2, 1, 3, 2])]
    for stop in ([], ["\n"]):  # 6 new tokens: past the first line of the list question's answer
        plain, cached = _both_paths(generator, lambda: (generator.generate(text),
                                                        generator.generate_latent(latent, vectors)),
                                    stop=stop, max_new_tokens=6)
        assert plain == cached
        assert stop or any("\n" in a for a in plain[0])  # without a stop string an answer runs over a new line
    assert generator.shared_prefix([p.input_ids for p in text]) > 30  # the template and system prompt are shared
    targets = [generator.answer_ids(a, 4) for a in ["Paris", "Pell", "Bo", "red", "blue"]]
    (pi, pl), (ci, cl) = _both_paths(generator, lambda: generator.forced_topk(text, targets, 8, 4))
    assert torch.equal(pi, ci) and torch.allclose(pl.float(), cl.float(), atol=0.02)
    (pa, pt), (ca, ct) = _both_paths(generator, lambda: generator.generate_ids(text, max_new_tokens=4,
                                                                               topk_logprobs=8))
    assert pa == ca and all(torch.equal(x[0], y[0]) and torch.allclose(x[1], y[1], atol=1e-3)
                            for x, y in zip(pt, ct))


def test_stop_strings_end_the_answer(generator, base_config):
    prompt = encode_text(generator.tokenizer, "Give a numbered list of three fruits.", [], base_config["prompt"])
    (free,) = _both_paths(generator, lambda: generator.generate([prompt]), stop=[])[:1]
    assert "\n" in free[0]  # without a stop string the answer runs over several lines
    plain, cached = _both_paths(generator, lambda: generator.generate([prompt]), stop=["\n"])
    assert plain == cached == [free[0].split("\n")[0].strip()]
    generator.cfg = dict(generator.cfg, stop=["\n", "Context"])
    try:
        assert generator.cut("Paris\nContext 2: x") == "Paris" and generator.cut("Paris, Context") == "Paris, "
        assert generator.cut("Paris") == "Paris"
    finally:
        generator.cfg = dict(generator.cfg, stop=[])
