"""Metrics. The scoring functions live in `lmem.metrics.qa`; `evaluate` modules under `modules/` wrap them so
they load from the repository with `evaluate.load(path)` (no hub)."""

from pathlib import Path

MODULES = Path(__file__).parent / "modules"


def load(name: str):
    """Load one of lmem's `evaluate` modules (lmem_qa, lmem_retrieval, lmem_webqa) from the repository."""
    import evaluate

    return evaluate.load(str(MODULES / name))
