"""What each DAG stage receives (lmem/specs.py), read off the profiles without Snakemake."""

import copy
from pathlib import Path

import pytest

from lmem.config import config_hash, load_config
from lmem.io import InputError
from lmem.specs import LOCATION_KEYS, Stages, spec_arg, without_locations
from lmem.work import module_closure, work_id

ROOT = Path(__file__).resolve().parents[1]


def stages(profile="ci", results_dir="/r"):
    return Stages(dict(load_config(ROOT / f"config/{profile}.yaml"), results_dir=results_dir))


def test_a_latent_memory_run_reads_its_compressor_and_index_and_carries_the_profile():
    s = stages()
    spec = s.run_spec("latent_memory_int8", "synth")
    ms = spec["method_spec"]
    assert ms["class"] == "latent_memory" and ms["storage"] == "int8" and ms["compressor"] == "smollm2"
    cid = s.work_id("compressors", "smollm2")
    assert len(cid) == 16 and ms["checkpoint_dir"] == f"/r/work/compressors/{cid}/best"  # trained work: by hash
    assert ms["index_dir"] == "/r/ci/latent_index/smollm2-best/synth"
    assert spec["work"] == f"compressors/{cid}/best"  # the results table's `work` column
    assert spec["generator"] == s.config["generator"] and spec["seed"] == 0
    inputs = s.run_inputs("synth", "latent_memory_int8")
    assert inputs == {"data": "/r/ci/data/synth.jsonl", "models": s.models_json,
                      "checkpoint": f"/r/work/compressors/{cid}/best/compressor.safetensors",
                      "index": "/r/ci/latent_index/smollm2-best/synth/meta.json"}
    assert s.models_json.startswith("/r/work/models/") and s.entry("compressors", cid) == "smollm2"
    assert "work" not in s.run_spec("bm25", "synth")


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
    pid = s.work_id("projectors", "minilm")
    assert xrag["projector"] == f"/r/work/projectors/{pid}/projector.safetensors" and "embeddings" in xrag
    assert "embeddings" not in s.run_inputs("synth", "bm25")


def test_training_specs_carry_the_entry_and_the_shared_sections():
    s = stages()
    train = s.train_spec("smollm2")
    assert train["train"] == s.config["compressors"]["smollm2"]["train"]
    assert train["compressor"]["num_layers"] == 10 and train["prompt"] == s.config["prompt"]
    assert train["train_data"] == s.config["compressors"]["smollm2"]["train_data"]  # a list of data specs, as given
    assert [(d["loader"], d["source"]["synth"]["single_fraction"]) for d in train["train_data"]] == [("hotpotqa", 1.0)]
    xrag = s.xrag_spec("minilm")
    assert xrag["retriever"] == s.config["retriever"] and xrag["train"]["steps"] == 30
    assert s.index_spec("smollm2", "synth")["storages"] == ["fp16", "int8", "pq"]


def test_timed_jobs_are_every_job_of_the_profile():
    s = stages()
    files = dict(j.split("=") for j in s.timed_jobs())
    assert {"train/smollm2", "train/smollm2_hotpotqa", "train_xrag/minilm", "embed/hotpotqa", "embed/synth",
            "index/smollm2-best/synth", "index/smollm2_hotpotqa-best/nq",
            "prepare/triviaqa", "run/synth/latent_memory_shuffled/k5", "run/triviaqa/closed_book/kall"} <= set(files)
    assert files["run/synth/bm25/k5"] == "/r/ci/benchmarks/run/synth/bm25/k5.tsv"
    # trained work's benchmark file is the work folder's, by id: shared by every profile that reuses it
    assert files["train/smollm2"] == f"/r/work/benchmarks/train/{s.work_id('compressors', 'smollm2')}.tsv"
    assert not [j for j in files if j.startswith("train_vision/")]
    assert "train_vision/effnet" in {j.split("=")[0] for j in stages("demo_full").timed_jobs()}


def profile(**changes):
    """The ci profile with `changes` (dotted keys) applied, as another profile would have it."""
    cfg = copy.deepcopy(dict(load_config(ROOT / "config/ci.yaml"), results_dir="/r"))
    for key, value in changes.items():
        *path, last = key.split(".")
        target = cfg
        for p in path:
            target = target[p]
        target[last] = value
    return Stages(cfg)


def test_trained_work_is_named_by_what_made_it_not_by_the_profile_or_entry():
    base = profile()
    other = profile(name="another", results_dir="/elsewhere", work_dir="/r/work")  # another profile, same work
    other.config["compressors"]["renamed"] = other.config["compressors"].pop("smollm2")
    assert other.work_dir("compressors", "renamed") == base.work_dir("compressors", "smollm2")  # trained once
    assert other.models_json == base.models_json
    assert base.work_dir("compressors", "smollm2", partial=True) == f"/r/work/partial/compressors/{base.work_id('compressors', 'smollm2')}"
    # one training option: a new compressor folder; the projector and the index options' change touch nothing else
    steps = profile(**{"compressors.smollm2.train.steps": 241})
    assert steps.work_id("compressors", "smollm2") != base.work_id("compressors", "smollm2")
    assert steps.work_id("projectors", "minilm") == base.work_id("projectors", "minilm")
    index = profile(**{"compressors.smollm2.index.pq_m": 4})
    assert index.work_id("compressors", "smollm2") == base.work_id("compressors", "smollm2")
    # the generator is in every trained spec: all of them change
    gen = profile(**{"generator.max_new_tokens": 7})
    assert gen.work_id("projectors", "minilm") != base.work_id("projectors", "minilm")
    with pytest.raises(InputError, match="no compressors entry of this profile has this work id"):
        base.entry("compressors", "0" * 16)


def test_a_compressor_on_a_vision_module_is_named_by_the_modules_id():
    full = Stages(dict(load_config(ROOT / "config/demo_full.yaml"), results_dir="/r"))
    name = next(n for n, c in full.config["compressors"].items() if c.get("vision"))
    before = full.work_id("compressors", name)
    assert full.train_spec(name)["compressor"]["vision_dir"] == full.vision_dir(full.config["compressors"][name]["vision"])
    full.config["vision"][full.config["compressors"][name]["vision"]]["train"]["steps"] += 1
    changed = Stages(full.config)
    assert changed.work_id("compressors", name) != before  # a retrained vision module retrains what builds on it


def test_a_work_id_covers_the_data_files_the_models_and_the_stages_code(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text("{}\n")
    spec = {"train": {"steps": 1}, "generator": {"model": "HuggingFaceTB/SmolLM2-135M-Instruct"}}
    first = work_id(spec, [str(data)], "lmem.train_compressor")
    assert work_id(spec, [str(data)], "lmem.train_compressor") == first
    data.write_text("{}\n{}\n")
    assert work_id(spec, [str(data)], "lmem.train_compressor") != first  # a changed data file
    assert work_id(spec, [str(data)], "lmem.train_xrag") != work_id(spec, [str(data)], "lmem.train_compressor")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    local = work_id({"model": str(model)}, [], "lmem.train_compressor")
    (model / "model.safetensors").write_text("weights")
    assert work_id({"model": str(model)}, [], "lmem.train_compressor") != local  # a changed local model
    # the stage's code: its module and what it imports, not the rest of the package
    closure = module_closure("lmem.train_compressor")
    assert {"lmem/losses.py", "lmem/training.py", "lmem/compressor.py", "lmem/data/hotpotqa.py"} <= set(closure)
    assert "lmem/report.py" not in closure and "lmem/train_xrag.py" not in closure


def test_a_second_stage_reads_the_first_stages_best_and_is_named_by_its_work():
    def two_stage(**changes):
        s = profile(**changes)
        s.config["compressors"]["second"] = dict(copy.deepcopy(s.config["compressors"]["smollm2"]),
                                                 init_from="smollm2")
        s.config["methods"]["lm2"] = {"class": "latent_memory", "k": [5], "compressor": "second"}
        return Stages(s.config)

    s = two_stage()
    first = s.work_dir("compressors", "smollm2")
    assert s.train_spec("second")["init_dir"] == f"{first}/best"
    assert s.compressor_inputs("second")["init"] == f"{first}/best/compressor.safetensors"  # the DAG orders them
    assert "init_dir" not in s.train_spec("smollm2") and "init_from" not in s.train_spec("second")["compressor"]
    assert s.work_id("compressors", "second") != s.work_id("compressors", "smollm2")
    # the row names both stages' work (so lmem.seed export carries the first stage too), the one it reads first
    one, two = (f"compressors/{s.work_id('compressors', n)}/best" for n in ("smollm2", "second"))
    assert s.work_used("lm2", "synth").split() == [two, one]
    assert s.work_used("latent_memory", "synth").split() == [one]
    # a retrained first stage retrains the second; where the first lies does not
    assert two_stage(**{"compressors.smollm2.train.steps": 7}).work_id("compressors", "second") != \
        s.work_id("compressors", "second")
    assert two_stage(work_dir="/elsewhere/work").work_id("compressors", "second") == s.work_id("compressors", "second")
