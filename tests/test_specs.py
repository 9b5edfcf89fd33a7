"""What each DAG stage receives (lmem/specs.py), read off the profiles without Snakemake."""

from pathlib import Path

from lmem.config import config_hash, load_config
from lmem.specs import LOCATION_KEYS, Stages, spec_arg, without_locations

ROOT = Path(__file__).resolve().parents[1]


def stages(profile="ci", results_dir="/r"):
    return Stages(dict(load_config(ROOT / f"config/{profile}.yaml"), results_dir=results_dir))


def test_a_latent_memory_run_reads_its_compressor_and_index_and_carries_the_profile():
    s = stages()
    spec = s.run_spec("latent_memory_int8", "synth")
    ms = spec["method_spec"]
    assert ms["class"] == "latent_memory" and ms["storage"] == "int8" and ms["compressor"] == "smollm2"
    assert ms["checkpoint_dir"] == "/r/ci/compressors/smollm2/best"
    assert ms["index_dir"] == "/r/ci/latent_index/smollm2-best/synth"
    assert spec["generator"] == s.config["generator"] and spec["seed"] == 0
    inputs = s.run_inputs("synth", "latent_memory_int8")
    assert inputs == {"data": "/r/ci/data/synth.jsonl", "models": "/r/ci/models.json",
                      "checkpoint": "/r/ci/compressors/smollm2/best/compressor.safetensors",
                      "index": "/r/ci/latent_index/smollm2-best/synth/meta.json"}


def test_where_the_inputs_are_is_not_what_the_run_is():
    a = stages(results_dir="/local").run_spec("latent_memory", "synth")
    b = stages(results_dir="/cluster/scratch").run_spec("latent_memory", "synth")
    assert a != b and spec_arg(a) != spec_arg(b)  # a moved results folder reruns the job ...
    assert config_hash(without_locations(a)) == config_hash(without_locations(b))  # ... and scores the same
    assert not set(without_locations(a)["method_spec"]) & set(LOCATION_KEYS)


def test_dense_and_xrag_share_the_corpus_embeddings_and_xrag_reads_its_projector():
    s = stages()
    assert s.run_inputs("synth", "dense")["embeddings"] == "/r/ci/embeddings/synth/retriever.safetensors"
    xrag = s.run_inputs("synth", "xrag")
    assert xrag["projector"] == "/r/ci/projectors/minilm/projector.safetensors" and "embeddings" in xrag
    assert "embeddings" not in s.run_inputs("synth", "bm25")


def test_training_specs_carry_the_entry_and_the_shared_sections():
    s = stages()
    train = s.train_spec("smollm2")
    assert train["train"] == s.config["compressors"]["smollm2"]["train"]
    assert train["compressor"]["num_layers"] == 10 and train["prompt"] == s.config["prompt"]
    assert [d["loader"] for d in train["train_data"]] == ["hotpotqa", "hotpotqa"]
    xrag = s.xrag_spec("minilm")
    assert xrag["retriever"] == s.config["retriever"] and xrag["train"]["steps"] == 30
    assert s.index_spec("smollm2", "synth")["storages"] == ["fp16", "int8", "pq"]


def test_timed_jobs_are_every_job_of_the_profile():
    jobs = stages().timed_jobs()
    assert {"train/smollm2", "train_xrag/minilm", "embed/hotpotqa", "embed/synth", "index/smollm2-best/nq",
            "prepare/triviaqa", "run/synth/latent_memory_shuffled/k5", "run/triviaqa/closed_book/kall"} <= set(jobs)
    assert not [j for j in jobs if j.startswith("train_vision/")]
    assert "train_vision/effnet" in stages("demo_full").timed_jobs()
