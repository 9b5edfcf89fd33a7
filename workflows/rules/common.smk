# What each stage receives is built in the package (lmem/specs.py, tested there); the rules name files and call it.
from lmem.config import validate_config
from lmem.specs import Stages, spec_arg

validate_config(config, "snakemake config")
STAGES = Stages(config)
OUT = STAGES.out
RUNS = STAGES.runs


wildcard_constraints:
    benchmark=r"[A-Za-z0-9_.-]+",
    method=r"[A-Za-z0-9_]+",
    k=r"\d+|all",
    compressor=r"[A-Za-z0-9_]+",
    projector=r"[A-Za-z0-9_]+",
    vision=r"[A-Za-z0-9_]+",
    stage=r"best|init",


def run_inputs(w):
    return STAGES.run_inputs(w.benchmark, w.method)


def compressor_inputs(w):
    return STAGES.compressor_inputs(w.compressor)


def train_data_files(w):
    """Official files the wildcard's compressor, projector or vision module trains on (a changed file retrains)."""
    sections = {"compressor": "compressors", "projector": "projectors", "vision": "vision"}
    key = next(k for k in sections if k in w.keys())
    return STAGES.train_data_files(sections[key], w[key])
