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


def spec_arg(obj):
    """A config slice as one shell-quoted JSON argument (it is also a rule param, so a change reruns the job)."""
    return shlex.quote(json.dumps(obj, sort_keys=True))


def run_spec(method):
    return {
        "method": method,
        "method_spec": config["methods"][method],
        "generator": config["generator"],
        "prompt": config["prompt"],
        "retriever": config["retriever"],
        "seed": config["seed"],
    }
