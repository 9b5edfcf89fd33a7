"""lmem: benchmark and reproducibility harness for Latent Memory (arXiv 2606.10572)."""

__version__ = "0.1.0"
