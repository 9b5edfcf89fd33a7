"""The xRAG baseline on a tiny random generator (plumbing): both training stages, exact resume, and a run whose
token accounting matches Latent Memory's (one position per retrieved item plus labels)."""

import pytest
from safetensors.torch import load_file

from lmem.data import load_examples
from lmem.prompts import encode_latent
from lmem.train_xrag import XragTrainer
from lmem.xrag import load_projector

SYNTH = {"loader": "hotpotqa", "source": {"synth": {"seed": 0, "split": "train", "n_train": 10}}}


def spec(model, base_config):
    return {"train": {"paraphrase_steps": 2, "steps": 3, "batch_size": 3, "save_every": 2, "distill_topk": 8,
                      "max_answer_tokens": 6, "max_paraphrase_tokens": 12, "warmup_steps": 1},
            "train_data": SYNTH, "generator": dict(base_config["generator"], model=model),
            "retriever": base_config["retriever"], "prompt": dict(base_config["prompt"], format="fewshot"), "seed": 0}


def train(s, out, stop_after=None):
    return XragTrainer(s, out, load_examples("train", SYNTH).examples).train(stop_after)


def test_two_stages_and_exact_resume(tiny_llama, base_config, tmp_path):
    s = spec(tiny_llama, base_config)
    assert train(s, tmp_path / "full")["step"] == 5
    assert train(s, tmp_path / "resumed", stop_after=3)["step"] == 3
    assert not (tmp_path / "resumed/projector.safetensors").exists()  # a killed run has no final projector
    assert train(s, tmp_path / "resumed")["step"] == 5
    a = load_file(str(tmp_path / "full/projector.safetensors"))
    b = load_file(str(tmp_path / "resumed/projector.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    log = (tmp_path / "full/train_log.csv").read_text().splitlines()
    assert [line.split(",")[1] for line in log[1:]] == ["paraphrase"] * 2 + ["instruction"] * 3
    assert "teacher.pt" in {p.name for p in (tmp_path / "full").iterdir()}


def test_unknown_option_is_an_error(tiny_llama, base_config, tmp_path):
    s = spec(tiny_llama, base_config)
    s["train"]["stepz"] = 1
    with pytest.raises(ValueError, match="unknown xRAG training options"):
        train(s, tmp_path)


def test_run_one_token_per_retrieved_item(tiny_llama, base_config, tmp_path):
    from lmem import baselines
    from lmem.generator import Generator

    s = spec(tiny_llama, base_config)
    s["train"].update(paraphrase_steps=1, steps=1)
    train(s, tmp_path)
    projector = load_projector(tmp_path)
    assert projector.meta["d_in"] == 384 and projector.meta["retriever"] == base_config["retriever"]["model"]
    generator = Generator(s["generator"])
    examples = load_examples("t", {"loader": "hotpotqa", "source": {"synth": {"seed": 3, "n_test": 3}}}).examples
    config = {"prompt": s["prompt"], "retriever": s["retriever"]}
    method = baselines.get("xrag")({"k": [2], "projector_dir": str(tmp_path)}, config)
    preds = method.run(examples, generator, 2)
    expected = encode_latent(generator.tokenizer, examples[0].question, 2, s["prompt"])
    assert len(preds) == 3 and all(len(p.retrieved_ids) == 2 for p in preds)
    assert preds[0].tokens_context == expected.tokens_context and preds[0].tokens_full == expected.tokens_full
    assert method.bytes_per_item == 384 * 4
    # the shuffled-memory control: each question reads what another question retrieved, with the same tokens
    shuffled = baselines.get("xrag")({"k": [2], "projector_dir": str(tmp_path), "memory": "shuffled"},
                                     dict(config, seed=0)).run(examples, generator, 2)
    owners = [p.retrieved_ids[0].split("/")[0] for p in shuffled]
    assert sorted(owners) == sorted(ex.id for ex in examples) and all(o != ex.id for o, ex in zip(owners, examples))
    assert [p.tokens_full for p in shuffled] == [p.tokens_full for p in preds]  # each question's own prompt
    # global mode: the same tokens, ranked over the three questions' corpus
    glob = baselines.get("xrag")({"k": [2], "projector_dir": str(tmp_path), "retrieval": "global"},
                                 config).run(examples, generator, 2)
    assert [p.tokens_full for p in glob] == [p.tokens_full for p in preds]
    own = [{e.id for e in ex.pool} for ex in examples]
    assert all(set(p.retrieved_ids) <= ids | {r for r in p.retrieved_ids if r.split("/")[0] in
                                               {x.id for x in examples if x.id != p.example_id}}
               for p, ids in zip(glob, own))


def test_released_xrag_checkpoint_path(smollm2, base_config, tmp_path):
    """`released: true`: the projector is read from an xRAG checkpoint laid out like Hannibal046/xrag-7b (a Mistral
    with `projector.projector.*` weights and projector_type mlp2x_gelu), fed raw last-token embeddings of an
    SFR-style retriever (a tiny random Mistral here: plumbing only)."""
    import json

    import torch
    from safetensors.torch import save_file
    from transformers import MistralConfig, MistralForCausalLM, MistralModel

    from lmem import baselines
    from lmem.generator import Generator
    from lmem.xrag import ReleasedProjector

    tok, _ = smollm2
    small = dict(vocab_size=len(tok), intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                 num_key_value_heads=2, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                 eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    gen_dir, ret_dir = tmp_path / "xrag-7b", tmp_path / "sfr"
    MistralForCausalLM(MistralConfig(hidden_size=32, **small)).save_pretrained(gen_dir)
    MistralModel(MistralConfig(hidden_size=16, **small)).save_pretrained(ret_dir)
    for d in (gen_dir, ret_dir):
        tok.save_pretrained(d)
    cfg = json.loads((gen_dir / "config.json").read_text())
    cfg.update(projector_type="mlp2x_gelu", retriever_hidden_size=16)
    (gen_dir / "config.json").write_text(json.dumps(cfg))
    weights = {"projector.projector.0.weight": torch.randn(32, 16), "projector.projector.0.bias": torch.zeros(32),
               "projector.projector.2.weight": torch.randn(32, 32) * 0.1, "projector.projector.2.bias": torch.zeros(32)}
    save_file(weights, str(gen_dir / "projector.safetensors"))

    projector = ReleasedProjector(gen_dir)
    assert projector.meta == {"d_in": 16, "d_out": 32, "projector_type": "mlp2x_gelu"}
    x = torch.randn(2, 16)
    expected = torch.nn.functional.gelu(x @ weights["projector.projector.0.weight"].T) @ weights[
        "projector.projector.2.weight"].T
    torch.testing.assert_close(projector(x), expected)

    generator = Generator(dict(base_config["generator"], model=str(gen_dir), max_new_tokens=4))
    examples = load_examples("t", {"loader": "hotpotqa", "source": {"synth": {"seed": 3, "n_test": 2}}}).examples
    config = {"prompt": dict(base_config["prompt"], format="fewshot"), "retriever": base_config["retriever"]}
    method = baselines.get("xrag")({"k": [2], "released": True, "retriever": str(ret_dir)}, config)
    preds = method.run(examples, generator, 2)
    assert len(preds) == 2 and all(len(p.retrieved_ids) == 2 for p in preds)
    assert preds[0].tokens_context == encode_latent(generator.tokenizer, examples[0].question, 2,
                                                    config["prompt"]).tokens_context
    assert method.models["projector"].startswith("released:")
    (gen_dir / "projector.safetensors").unlink()
    with pytest.raises(ValueError, match="no projector"):
        ReleasedProjector(gen_dir)
