# What each stage receives is built in the package (lmem/specs.py, tested there); the rules name files and call it.
from lmem.config import validate_config
from lmem.specs import Stages, spec_arg
from lmem.worker import memory_file

# errors name the profile file(s) given with --configfile (or the embedded default)
validate_config(config, ", ".join(map(str, workflow.configfiles)) or "snakemake config")
STAGES = Stages(config)
OUT = STAGES.out
WORK = STAGES.work  # trained work, in folders named by a hash of what made it (lmem/work.py)
RUNS = STAGES.runs
# the model stages' benchmark files (Snakemake `benchmark:`, read by lmem.timings); a job the fork server runs
# (lmem/worker.py) writes its child's peak memory beside its file (memory_file)
BENCH = {
    "run": f"{OUT}/benchmarks/run/{{benchmark}}/{{method}}/k{{k}}.tsv",
    "index": f"{OUT}/benchmarks/index/{{compressor}}-{{stage}}/{{benchmark}}.tsv",
    "embed": f"{OUT}/benchmarks/embed/{{benchmark}}.tsv",
    "train": f"{WORK}/benchmarks/train/{{cid}}.tsv",
    "train_xrag": f"{WORK}/benchmarks/train_xrag/{{pid}}.tsv",
    "train_vision": f"{WORK}/benchmarks/train_vision/{{vid}}.tsv",
}


wildcard_constraints:
    benchmark=r"[A-Za-z0-9_.-]+",
    method=r"[A-Za-z0-9_]+",
    k=r"\d+|all",
    compressor=r"[A-Za-z0-9_]+",
    projector=r"[A-Za-z0-9_]+",
    vision=r"[A-Za-z0-9_]+",
    stage=r"best|init",
    cid=r"[0-9a-f]{16}",
    pid=r"[0-9a-f]{16}",
    vid=r"[0-9a-f]{16}",


def run_inputs(w):
    return STAGES.run_inputs(w.benchmark, w.method)


SECTIONS = {"cid": "compressors", "pid": "projectors", "vid": "vision"}  # a work-id wildcard -> its config section


def entry(w):
    """The config entry of the wildcard's work id (cid, pid or vid)."""
    key = next(k for k in SECTIONS if k in w.keys())
    return SECTIONS[key], STAGES.entry(SECTIONS[key], w[key])


def compressor_inputs(w):
    return STAGES.compressor_inputs(entry(w)[1])


def train_data_files(w):
    """Official files the wildcard's compressor, projector or vision module trains on."""
    return STAGES.train_data_files(*entry(w))


def partial_dir(w):
    """Where the wildcard's work trains until it is finished (then moved to its folder)."""
    return STAGES.work_dir(*entry(w), partial=True)
