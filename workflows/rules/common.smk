import json
import os
import shlex

from lmem.config import runs, validate_config

validate_config(config, "snakemake config")
OUT = f"{config['results_dir']}/{config['name']}"
RUNS = runs(config)


wildcard_constraints:
    benchmark=r"[A-Za-z0-9_.-]+",
    method=r"[A-Za-z0-9_]+",
    k=r"\d+|all",
    compressor=r"[A-Za-z0-9_]+",
    projector=r"[A-Za-z0-9_]+",
    stage=r"best|init",


def spec_arg(obj):
    """A config slice as one shell-quoted JSON argument (it is also a rule param, so a change reruns the job)."""
    return shlex.quote(json.dumps(obj, sort_keys=True))


def latent_paths(method, benchmark):
    """Folders of what a method's run reads besides the data: a trained compressor's checkpoint and latent index,
    or a trained xRAG projector (else {})."""
    spec = config["methods"][method]
    if "projector" in spec:
        return {"projector_dir": f"{OUT}/projectors/{spec['projector']}"}
    if "compressor" not in spec:
        return {}
    stage = spec.get("checkpoint", "best")
    return {
        "checkpoint_dir": f"{OUT}/compressors/{spec['compressor']}/{stage}",
        "index_dir": f"{OUT}/latent_index/{spec['compressor']}-{stage}/{benchmark}",
    }


def run_inputs(w):
    paths = latent_paths(w.method, w.benchmark)
    inputs = {"data": f"{OUT}/data/{w.benchmark}.jsonl", "models": f"{OUT}/models.json"}
    if "projector_dir" in paths:
        inputs["projector"] = f"{paths['projector_dir']}/projector.safetensors"
    elif paths:
        inputs["checkpoint"] = f"{paths['checkpoint_dir']}/compressor.safetensors"
        inputs["index"] = f"{paths['index_dir']}/meta.json"
    return inputs


def run_spec(method, benchmark):
    return {
        "method": method,
        "method_spec": {**config["methods"][method], **latent_paths(method, benchmark)},
        "generator": config["generator"],
        "prompt": config["prompt"],
        "retriever": config["retriever"],
        "seed": config["seed"],
    }


def train_spec(name):
    return {
        "compressor": config["compressors"][name],
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


def train_data_files(w):
    """Official files a compressor or projector trains on (so a changed file retrains it)."""
    c = config["compressors"][w.compressor] if "compressor" in w.keys() else config["projectors"][w.projector]
    specs = [s for key in ("train_data", "val_data") if key in c
             for s in (c[key] if isinstance(c[key], list) else [c[key]])]
    return [s["source"]["path"] for s in specs if s.get("source", {}).get("path")]
