"""What every stage entry point shares: parsing a JSON spec argument, logging, thread count, the device."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path


def parse_spec(value: str) -> dict:
    """A spec is inline JSON or `@path/to/spec.json`."""
    if value.startswith("@"):
        return json.loads(Path(value[1:]).read_text())
    return json.loads(value)


def device():
    """Where models run: $LMEM_DEVICE (cpu, cuda, cuda:1, mps...) or the first CUDA GPU when there is one."""
    import torch  # here, not at the top: the light stages (prepare, score, report) never import torch

    return torch.device(os.environ.get("LMEM_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu"))


def setup(threads: int | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if threads:
        import torch

        torch.set_num_threads(threads)
