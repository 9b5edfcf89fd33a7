"""What every DAG stage receives, built from a validated profile config.

The workflow's rules (workflows/rules/*.smk) name files and call these; what a stage is given is decided here, in
the package, where it is tested (tests/test_specs.py) and readable without Snakemake. Each spec is also a rule
param (`spec_arg`), so a changed spec reruns its job. The input locations a run spec carries (checkpoint, index,
projector, embeddings, vision module) are `LOCATION_KEYS`: lmem.score drops them from the spec it hashes, so the
same work stored elsewhere scores the same.
"""

from __future__ import annotations

import json
import os
import shlex

from lmem.config import method_spec, runs

# the keys of a run spec that say where its inputs are, not what the run is
LOCATION_KEYS = ("checkpoint_dir", "index_dir", "projector_dir", "embeddings", "vision_dir")


def uses_corpus_embeddings(name: str, spec: dict, config: dict) -> bool:
    """Does method entry `name` rank with the run's retriever as the embed stage encodes it (mean pooling, no query
    instruction, unit vectors)? Dense and trained xRAG on the default retriever do; others encode in their run."""
    if spec.get("class", name) not in ("dense", "xrag"):
        return False
    if spec.get("released") or spec.get("pooling", "mean") != "mean" or spec.get("query_instruction"):
        return False
    model = spec.get("model") or config["retriever"]["model"]
    if "projector" in spec:
        model = config.get("projectors", {}).get(spec["projector"], {}).get("retriever") or config["retriever"]["model"]
    return model == config["retriever"]["model"]


def without_locations(spec: dict) -> dict:
    """A run spec without its input locations (LOCATION_KEYS, at the top and in the method's spec): what the run
    is, so two results folders (a local and a cluster run, two profiles) give the same hash for the same config."""
    out = {k: v for k, v in spec.items() if k not in LOCATION_KEYS}
    if isinstance(out.get("method_spec"), dict):
        out["method_spec"] = {k: v for k, v in out["method_spec"].items() if k not in LOCATION_KEYS}
    return out


def spec_arg(obj) -> str:
    """A config slice as one shell-quoted JSON argument (it is also a rule param, so a change reruns the job)."""
    return shlex.quote(json.dumps(obj, sort_keys=True))


class Stages:
    """The specs, inputs and paths of one profile's stages under `<results_dir>/<name>`."""

    def __init__(self, config: dict):
        self.config = config
        self.out = f"{config['results_dir']}/{config['name']}"
        self.runs = runs(config)

    # -- paths -----------------------------------------------------------------------------------------------
    def vision_dir(self, name: str | None) -> str | None:
        return f"{self.out}/vision/{name}" if name else None

    def embeddings_path(self, method: str, benchmark: str) -> str | None:
        """The embed_corpus job's file, for a method that ranks with the run's retriever (dense, xRAG), else None."""
        if uses_corpus_embeddings(method, method_spec(self.config, method, benchmark), self.config):
            return f"{self.out}/embeddings/{benchmark}/retriever.safetensors"
        return None

    def latent_paths(self, method: str, benchmark: str) -> dict:
        """Paths of what a method's run reads besides the data: a trained compressor's checkpoint and latent index,
        or a trained xRAG projector, and the corpus embeddings of the run's retriever (else {})."""
        spec = method_spec(self.config, method, benchmark)
        emb = self.embeddings_path(method, benchmark)
        extra = {"embeddings": emb} if emb else {}
        if "projector" in spec:
            return {"projector_dir": f"{self.out}/projectors/{spec['projector']}", **extra}
        if "compressor" not in spec:
            return extra
        stage = spec.get("checkpoint", "best")
        return {
            "checkpoint_dir": f"{self.out}/compressors/{spec['compressor']}/{stage}",
            "index_dir": f"{self.out}/latent_index/{spec['compressor']}-{stage}/{benchmark}",
        }

    # -- inputs (files a job reads, so Snakemake orders the jobs) --------------------------------------------
    def run_inputs(self, benchmark: str, method: str) -> dict:
        paths = self.latent_paths(method, benchmark)
        inputs = {"data": f"{self.out}/data/{benchmark}.jsonl", "models": f"{self.out}/models.json"}
        vision = self.config["benchmarks"][benchmark].get("vision")
        if vision:
            inputs["vision"] = f"{self.out}/vision/{vision}/projector.safetensors"
        if "embeddings" in paths:
            inputs["embeddings"] = paths["embeddings"]
        if "projector_dir" in paths:
            inputs["projector"] = f"{paths['projector_dir']}/projector.safetensors"
        elif "checkpoint_dir" in paths:
            inputs["checkpoint"] = f"{paths['checkpoint_dir']}/compressor.safetensors"
            inputs["index"] = f"{paths['index_dir']}/meta.json"
        return inputs

    def compressor_inputs(self, name: str) -> dict:
        """What training a compressor reads: the models, its official data files, and its vision module if any."""
        inputs = {"models": f"{self.out}/models.json", "data": self.train_data_files("compressors", name)}
        vision = self.config["compressors"][name].get("vision")
        if vision:
            inputs["vision"] = f"{self.out}/vision/{vision}/projector.safetensors"
        return inputs

    def train_data_files(self, section: str, name: str) -> list[str]:
        """Official files an entry of `section` (compressors, projectors, vision) trains or validates on, so a
        changed file retrains it. Files not there yet are left to the stage, whose loader names the missing file
        (so a dry run still plans)."""
        c = self.config[section][name]
        specs = [s for key in ("train_data", "val_data") if key in c
                 for s in (c[key] if isinstance(c[key], list) else [c[key]])]
        return [s["source"]["path"] for s in specs
                if s.get("source", {}).get("path") and os.path.exists(s["source"]["path"])]

    # -- specs -----------------------------------------------------------------------------------------------
    def run_spec(self, method: str, benchmark: str) -> dict:
        c, bench = self.config, self.config["benchmarks"][benchmark]
        return {
            "method": method,
            "method_spec": {**method_spec(c, method, benchmark), **self.latent_paths(method, benchmark)},
            # image benchmarks only (so text runs keep their params, and their outputs, when these are added)
            **({"vision_dir": self.vision_dir(bench["vision"])} if bench.get("vision") else {}),
            **({"images": bench["images"]} if bench.get("images") else {}),
            "generator": c["generator"],
            "prompt": c["prompt"],
            "retriever": c["retriever"],
            "seed": c["seed"],
        }

    def train_spec(self, name: str) -> dict:
        c = self.config["compressors"][name]
        return {
            "compressor": {**c, **({"vision_dir": self.vision_dir(c["vision"])} if c.get("vision") else {})},
            "train": c.get("train", {}),
            "train_data": c["train_data"],
            "val_data": c["val_data"],
            "generator": self.config["generator"],
            "prompt": self.config["prompt"],
            "seed": self.config["seed"],
        }

    def xrag_spec(self, name: str) -> dict:
        p, c = self.config["projectors"][name], self.config
        return {
            "train": p.get("train", {}),
            "train_data": p["train_data"],
            "generator": c["generator"],
            "retriever": {**c["retriever"], **({"model": p["retriever"]} if p.get("retriever") else {})},
            "prompt": c["prompt"],
            "seed": c["seed"],
        }

    def index_spec(self, compressor: str, benchmark: str) -> dict:
        images = self.config["benchmarks"][benchmark].get("images")
        return {**self.config["compressors"][compressor]["index"], **({"images": images} if images else {})}

    def vision_spec(self, name: str) -> dict:
        c = self.config
        return {**c["vision"][name], "generator": c["generator"], "prompt": c["prompt"], "seed": c["seed"]}

    # -- the report's timings --------------------------------------------------------------------------------
    def timed_jobs(self) -> list[str]:
        """`<rule>/<job>` of every job `all` runs that writes a benchmark file (results/<profile>/benchmarks/)."""
        c = self.config
        jobs = {f"prepare/{b}" for b in c["benchmarks"]}
        visions = {b["vision"] for b in c["benchmarks"].values() if b.get("vision")}
        for b, m, k in self.runs:
            jobs.add(f"run/{b}/{m}/k{k}")
            if self.embeddings_path(m, b):
                jobs.add(f"embed/{b}")
            spec = method_spec(c, m, b)
            if "projector" in spec:
                jobs.add(f"train_xrag/{spec['projector']}")
            elif "compressor" in spec:
                name = spec["compressor"]
                jobs |= {f"train/{name}", f"index/{name}-{spec.get('checkpoint', 'best')}/{b}"}
                if c["compressors"][name].get("vision"):
                    visions.add(c["compressors"][name]["vision"])
        return sorted(jobs | {f"train_vision/{v}" for v in visions})
