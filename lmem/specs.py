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
from functools import cached_property, lru_cache

from lmem.config import method_spec, runs
from lmem.io import InputError
from lmem.method_options import method_option
from lmem.work import work_id

# the keys of a run spec that say where its inputs are, not what the run is
LOCATION_KEYS = ("checkpoint_dir", "index_dir", "projector_dir", "embeddings", "vision_dir", "work")
# trained work: config section -> (folder under work_dir, the stage module whose code is in the folder's id)
WORK_KINDS = {"compressors": ("compressors", "lmem.train_compressor"), "projectors": ("projectors", "lmem.train_xrag"),
              "vision": ("vision", "lmem.train_vision")}


def uses_corpus_embeddings(name: str, spec: dict, config: dict) -> bool:
    """Does method entry `name` rank with the run's retriever as the embed stage encodes it (mean pooling, no query
    instruction, unit vectors)? Dense and trained xRAG on the default retriever do; others encode in their run."""
    cls = spec.get("class", name)
    if cls not in ("dense", "xrag"):
        return False
    if method_option(spec, cls, "query_instruction") or (
            method_option(spec, cls, "released") if cls == "xrag" else method_option(spec, cls, "pooling") != "mean"):
        return False
    model = (method_option(spec, cls, "model") if cls == "dense" else None) or config["retriever"]["model"]
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
    """The specs, inputs and paths of one profile's stages: its outputs under `<results_dir>/<name>`, its trained
    work under `work_dir`."""

    def __init__(self, config: dict):
        self.config = config
        self.out = f"{config['results_dir']}/{config['name']}"
        self.work = config.get("work_dir") or f"{config['results_dir']}/work"
        self.runs = runs(config)
        self.work_id = lru_cache(maxsize=None)(self._work_id)

    # -- trained work, in folders named by what made it (lmem.work) ------------------------------------------
    def _work_id(self, section: str, name: str) -> str:
        """The id of entry `name` of `section` (compressors, projectors, vision): its spec without locations (a
        vision module it builds on by that module's id), its data files' hashes, its models, its stage's code."""
        if name not in self.config.get(section, {}):
            raise InputError(f"{section}.{name}: no such entry; known: {sorted(self.config.get(section, {}))}")
        spec = {"compressors": self.train_spec, "projectors": self.xrag_spec, "vision": self.vision_spec}[section](name)
        if section == "compressors" and "vision_dir" in spec["compressor"]:
            vision = self.config[section][name]["vision"]
            spec = {**spec, "compressor": {**without_locations(spec["compressor"]),
                                           "vision_work": self.work_id("vision", vision)}}
        if section == "compressors" and "init_dir" in spec:  # by the id of the work it starts from
            spec = {**{k: v for k, v in spec.items() if k != "init_dir"},
                    "init_work": self.work_id(section, self.config[section][name]["init_from"])}
        return work_id(spec, self.train_data_files(section, name), WORK_KINDS[section][1])

    def work_dir(self, section: str, name: str, partial: bool = False) -> str:
        """`<work_dir>/<kind>/<id>`: entry `name` of `section` once trained (finished work only); with `partial`,
        `<work_dir>/partial/<kind>/<id>`, where it trains (resume checkpoint included) until it is finished."""
        return f"{self.work}/{'partial/' if partial else ''}{WORK_KINDS[section][0]}/{self.work_id(section, name)}"

    def seeded(self, section: str, name: str) -> str:
        """The prefix of entry `name`'s training command when the profile has `work_seed` (lmem.seed: the seed
        folder of its work id is copied in when it is the same work, else the command after `--` trains), or ""."""
        seed = self.config.get("work_seed")
        if not seed:
            return ""
        rel = f"{WORK_KINDS[section][0]}/{self.work_id(section, name)}"
        return (f"python -m lmem.seed apply --from {shlex.quote(f'{seed}/{rel}')} "
                f"--to {shlex.quote(self.work_dir(section, name))} -- ")

    def entry(self, section: str, wid: str) -> str:
        """The entry of `section` with work id `wid` (the first, by name, when several share a spec)."""
        names = sorted(n for n in self.config.get(section, {}) if self.work_id(section, n) == wid)
        if not names:
            raise InputError(f"{self.work}/{WORK_KINDS[section][0]}/{wid}: no {section} entry of this profile has "
                             "this work id (it was made by another spec or code version)")
        return names[0]

    @cached_property
    def models_json(self) -> str:  # (hashes the models' identities: once per profile, not once per run input)
        """The models stage's file: every model of the generator and retriever resolved offline (once per spec)."""
        spec = {"generator": self.config["generator"], "retriever": self.config["retriever"]}
        return f"{self.work}/models/{work_id(spec, [], 'lmem.models')}.json"

    # -- paths -----------------------------------------------------------------------------------------------
    def vision_dir(self, name: str | None) -> str | None:
        return self.work_dir("vision", name) if name else None

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
            return {"projector_dir": self.work_dir("projectors", spec["projector"]), **extra}
        if "compressor" not in spec:
            return extra
        stage = spec.get("checkpoint", "best")
        return {
            "checkpoint_dir": self.checkpoint_dir(spec["compressor"], stage),
            "index_dir": f"{self.out}/latent_index/{spec['compressor']}-{stage}/{benchmark}",
        }

    def work_used(self, method: str, benchmark: str) -> str:
        """The trained-work folders a run reads, then the best checkpoints its compressor was trained from
        (`init_from`, first stage last), relative to work_dir: the results table's `work` column, which
        `lmem.seed export` copies."""
        paths = self.latent_paths(method, benchmark)
        used = [paths.get("checkpoint_dir"), paths.get("projector_dir"),
                self.vision_dir(self.config["benchmarks"][benchmark].get("vision"))]
        compressor = method_spec(self.config, method, benchmark).get("compressor")
        while compressor and self.config["compressors"][compressor].get("init_from"):
            compressor = self.config["compressors"][compressor]["init_from"]
            used.append(self.checkpoint_dir(compressor, "best"))
        return " ".join(os.path.relpath(p, self.work) for p in used if p)

    # -- inputs (files a job reads, so Snakemake orders the jobs) --------------------------------------------
    def run_inputs(self, benchmark: str, method: str) -> dict:
        paths = self.latent_paths(method, benchmark)
        inputs = {"data": f"{self.out}/data/{benchmark}.jsonl", "models": self.models_json}
        vision = self.config["benchmarks"][benchmark].get("vision")
        if vision:
            inputs["vision"] = f"{self.vision_dir(vision)}/projector.safetensors"
        if "embeddings" in paths:
            inputs["embeddings"] = paths["embeddings"]
        if "projector_dir" in paths:
            inputs["projector"] = f"{paths['projector_dir']}/projector.safetensors"
        elif "checkpoint_dir" in paths:
            inputs["checkpoint"] = f"{paths['checkpoint_dir']}/compressor.safetensors"
            inputs["index"] = f"{paths['index_dir']}/meta.json"
        return inputs

    def compressor_inputs(self, name: str) -> dict:
        """What training a compressor reads: the models, its official data files, its vision module if any, and
        the checkpoint it starts from if any (init_from)."""
        inputs = {"models": self.models_json, "data": self.train_data_files("compressors", name)}
        vision = self.config["compressors"][name].get("vision")
        if vision:
            inputs["vision"] = f"{self.vision_dir(vision)}/projector.safetensors"
        parent = self.config["compressors"][name].get("init_from")
        if parent:
            inputs["init"] = self.index_checkpoint(parent, "best")
        return inputs

    def checkpoint_dir(self, compressor: str, stage: str) -> str:
        """The folder of entry `compressor`'s checkpoint at `stage` (best, init) in its work folder."""
        return f"{self.work_dir('compressors', compressor)}/{stage}"

    def index_checkpoint(self, compressor: str, stage: str) -> str:
        """The checkpoint file an index of entry `compressor` at `stage` (best, init) encodes with."""
        return f"{self.checkpoint_dir(compressor, stage)}/compressor.safetensors"

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
        used = self.work_used(method, benchmark)
        return {
            "method": method,
            "method_spec": {**method_spec(c, method, benchmark), **self.latent_paths(method, benchmark)},
            **({"work": used} if used else {}),
            # image benchmarks only (so text runs keep their params, and their outputs, when these are added)
            **({"vision_dir": self.vision_dir(bench["vision"])} if bench.get("vision") else {}),
            **({"images": bench["images"]} if bench.get("images") else {}),
            "generator": c["generator"],
            "prompt": c["prompt"],
            "retriever": c["retriever"],
            "seed": c["seed"],
        }

    def train_spec(self, name: str) -> dict:
        # the compressor's own keys (its train, data and index sections are given once, below, or are the index's)
        entry = self.config["compressors"][name]
        c = {k: v for k, v in entry.items() if k not in ("index", "train", "train_data", "val_data", "init_from")}
        return {
            "compressor": {**c, **({"vision_dir": self.vision_dir(c["vision"])} if c.get("vision") else {})},
            **({"init_dir": self.checkpoint_dir(entry["init_from"], "best")} if entry.get("init_from") else {}),
            "train": entry.get("train", {}),
            "train_data": entry["train_data"],
            "val_data": entry["val_data"],
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
        """`<rule>/<job>=<benchmark file>` of every job `all` runs that writes one: under the profile's
        benchmarks/ folder, or for trained work under `<work_dir>/benchmarks/` (named there by work id)."""
        c = self.config
        jobs = {f"prepare/{b}" for b in c["benchmarks"]}
        work = {}  # job -> (section, entry)
        visions = {b["vision"] for b in c["benchmarks"].values() if b.get("vision")}
        for b, m, k in self.runs:
            jobs.add(f"run/{b}/{m}/k{k}")
            if self.embeddings_path(m, b):
                jobs.add(f"embed/{b}")
            spec = method_spec(c, m, b)
            if "projector" in spec:
                work[f"train_xrag/{spec['projector']}"] = ("projectors", spec["projector"])
            elif "compressor" in spec:
                name = spec["compressor"]
                work[f"train/{name}"] = ("compressors", name)
                jobs.add(f"index/{name}-{spec.get('checkpoint', 'best')}/{b}")
                if c["compressors"][name].get("vision"):
                    visions.add(c["compressors"][name]["vision"])
        work |= {f"train_vision/{v}": ("vision", v) for v in visions}
        out = {j: f"{self.out}/benchmarks/{j}.tsv" for j in jobs}
        for job, (section, name) in work.items():
            out[job] = f"{self.work}/benchmarks/{job.partition('/')[0]}/{self.work_id(section, name)}.tsv"
        return [f"{j}={p}" for j, p in sorted(out.items())]
