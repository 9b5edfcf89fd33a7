import json
import os
import shlex

from lmem.config import method_spec, runs, validate_config
from lmem.corpus import uses_corpus_embeddings

validate_config(config, "snakemake config")
OUT = f"{config['results_dir']}/{config['name']}"
RUNS = runs(config)


wildcard_constraints:
    benchmark=r"[A-Za-z0-9_.-]+",
    method=r"[A-Za-z0-9_]+",
    k=r"\d+|all",
    compressor=r"[A-Za-z0-9_]+",
    projector=r"[A-Za-z0-9_]+",
    vision=r"[A-Za-z0-9_]+",
    stage=r"best|init",


def spec_arg(obj):
    """A config slice as one shell-quoted JSON argument (it is also a rule param, so a change reruns the job)."""
    return shlex.quote(json.dumps(obj, sort_keys=True))


def embeddings_path(method, benchmark):
    """The embed_corpus job's file, for a method that ranks with the run's retriever (dense, xRAG), else None."""
    if uses_corpus_embeddings(method, method_spec(config, method, benchmark), config):
        return f"{OUT}/embeddings/{benchmark}/retriever.safetensors"
    return None


def latent_paths(method, benchmark):
    """Paths of what a method's run reads besides the data: a trained compressor's checkpoint and latent index,
    or a trained xRAG projector, and the corpus embeddings of the run's retriever (else {})."""
    spec = method_spec(config, method, benchmark)
    emb = embeddings_path(method, benchmark)
    extra = {"embeddings": emb} if emb else {}
    if "projector" in spec:
        return {"projector_dir": f"{OUT}/projectors/{spec['projector']}", **extra}
    if "compressor" not in spec:
        return extra
    stage = spec.get("checkpoint", "best")
    return {
        "checkpoint_dir": f"{OUT}/compressors/{spec['compressor']}/{stage}",
        "index_dir": f"{OUT}/latent_index/{spec['compressor']}-{stage}/{benchmark}",
    }


def run_inputs(w):
    paths = latent_paths(w.method, w.benchmark)
    inputs = {"data": f"{OUT}/data/{w.benchmark}.jsonl", "models": f"{OUT}/models.json"}
    vision = config["benchmarks"][w.benchmark].get("vision")
    if vision:
        inputs["vision"] = f"{OUT}/vision/{vision}/projector.safetensors"
    if "embeddings" in paths:
        inputs["embeddings"] = paths["embeddings"]
    if "projector_dir" in paths:
        inputs["projector"] = f"{paths['projector_dir']}/projector.safetensors"
    elif "checkpoint_dir" in paths:
        inputs["checkpoint"] = f"{paths['checkpoint_dir']}/compressor.safetensors"
        inputs["index"] = f"{paths['index_dir']}/meta.json"
    return inputs


def vision_dir(name):
    return f"{OUT}/vision/{name}" if name else None


def run_spec(method, benchmark):
    bench = config["benchmarks"][benchmark]
    return {
        "method": method,
        "method_spec": {**method_spec(config, method, benchmark), **latent_paths(method, benchmark)},
        # image benchmarks only (so text runs keep their params, and their outputs, when these are added)
        **({"vision_dir": vision_dir(bench["vision"])} if bench.get("vision") else {}),
        **({"images": bench["images"]} if bench.get("images") else {}),
        "generator": config["generator"],
        "prompt": config["prompt"],
        "retriever": config["retriever"],
        "seed": config["seed"],
    }


def train_spec(name):
    c = config["compressors"][name]
    return {
        "compressor": {**c, **({"vision_dir": vision_dir(c["vision"])} if c.get("vision") else {})},
        "train": config["compressors"][name].get("train", {}),
        "train_data": config["compressors"][name]["train_data"],
        "val_data": config["compressors"][name]["val_data"],
        "generator": config["generator"],
        "prompt": config["prompt"],
        "seed": config["seed"],
    }


def xrag_spec(name):
    p = config["projectors"][name]
    return {
        "train": p.get("train", {}),
        "train_data": p["train_data"],
        "generator": config["generator"],
        "retriever": {**config["retriever"], **({"model": p["retriever"]} if p.get("retriever") else {})},
        "prompt": config["prompt"],
        "seed": config["seed"],
    }


def index_spec(compressor, benchmark):
    images = config["benchmarks"][benchmark].get("images")
    return {**config["compressors"][compressor]["index"], **({"images": images} if images else {})}


def vision_spec(name):
    v = config["vision"][name]
    return {**v, "generator": config["generator"], "prompt": config["prompt"], "seed": config["seed"]}


def compressor_inputs(w):
    """What training a compressor reads: the models, its official data files, and its vision module if any."""
    inputs = {"models": f"{OUT}/models.json", "data": train_data_files(w)}
    vision = config["compressors"][w.compressor].get("vision")
    if vision:
        inputs["vision"] = f"{OUT}/vision/{vision}/projector.safetensors"
    return inputs


def train_data_files(w):
    """Official files a compressor, projector or vision module trains on (so a changed file retrains it)."""
    sections = {"compressor": "compressors", "projector": "projectors", "vision": "vision"}
    key = next(k for k in sections if k in w.keys())
    c = config[sections[key]][w[key]]
    specs = [s for key in ("train_data", "val_data") if key in c
             for s in (c[key] if isinstance(c[key], list) else [c[key]])]
    # files not there yet are left to the stage, whose loader names the missing file (so a dry run still plans)
    return [s["source"]["path"] for s in specs if s.get("source", {}).get("path") and os.path.exists(s["source"]["path"])]


def timed_jobs():
    """`<rule>/<job>` of every job `all` runs that writes a benchmark file (results/<profile>/benchmarks/)."""
    jobs = {f"prepare/{b}" for b in config["benchmarks"]}
    visions = {b["vision"] for b in config["benchmarks"].values() if b.get("vision")}
    for b, m, k in RUNS:
        jobs.add(f"run/{b}/{m}/k{k}")
        if embeddings_path(m, b):
            jobs.add(f"embed/{b}")
        spec = method_spec(config, m, b)
        if "projector" in spec:
            jobs.add(f"train_xrag/{spec['projector']}")
        elif "compressor" in spec:
            name = spec["compressor"]
            jobs |= {f"train/{name}", f"index/{name}-{spec.get('checkpoint', 'best')}/{b}"}
            if config["compressors"][name].get("vision"):
                visions.add(config["compressors"][name]["vision"])
    return sorted(jobs | {f"train_vision/{v}" for v in visions})
