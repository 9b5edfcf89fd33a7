import pytest

from lmem.config import load_config, runs, validate_config
from lmem.io import InputError

from conftest import ROOT


def test_profiles_validate_with_defaults():
    for name in ("demo", "demo_full", "ci"):
        cfg = load_config(ROOT / "config" / f"{name}.yaml")
        assert cfg["name"] == name
        assert cfg["retriever"]["model"] == "sentence-transformers/all-MiniLM-L6-v2"
        assert cfg["prompt"]["system"].startswith("You are a helpful assistant.")
        for bench in cfg["benchmarks"].values():
            assert bench["on_bad_record"] == "error"


def test_demo_full_trains_the_demos_compressor():
    """`demo_full` is everything `demo` runs plus more: its text compressor is the demo's, to the key (one recipe
    to tune, one trained folder for both)."""
    demo, full = (load_config(ROOT / "config" / f"{n}.yaml")["compressors"]["smollm2"] for n in ("demo", "demo_full"))
    assert full == demo and demo["train"]["distill_types"] == ["single"]


def test_ci_profile_runs():
    cfg = load_config(ROOT / "config" / "ci.yaml")
    r = runs(cfg)
    assert ("triviaqa", "closed_book", "all") in r and ("triviaqa", "bm25", "5") not in r
    assert ("synth", "bm25", "5") in r and ("synth", "dense", "5") in r and ("hotpotqa", "dense", "5") not in r
    assert ("wice", "latent_memory", "5") in r and ("wice", "latent_memory_shuffled", "5") not in r
    assert ("synth", "xrag", "5") in r and ("synth", "xrag_shuffled", "5") in r
    assert ("hotpotqa", "latent_memory_shuffled", "5") in r and ("synth", "llmlingua2_r10", "all") in r
    assert ("nq", "full_context", "all") not in r and ("nq", "xrag", "5") not in r
    assert ("hotpotqa", "bm25_global", "5") in r and ("synth", "bm25_global", "5") not in r
    assert ("synth", "latent_memory_pq", "5") in r and ("nq", "latent_memory_compact", "5") in r
    # synth: 4 methods without k + 9 at k = 5; HotpotQA: 2 + 8 (4 global); four more slices: 1 + 3; TriviaQA: 1
    assert len(r) == (4 + 9) + (2 + 8) + 4 * (1 + 3) + 1


def test_errors_list_every_problem():
    with pytest.raises(InputError) as e:
        validate_config({"name": "bad name", "benchmarks": {"x": {"source": {}}}, "methods": {"bm25": {"k": [0]}},
                         "generator": {"dtype": "int8"}})
    msg = str(e.value)
    for fragment in ("name", "loader", "dtype", "methods/bm25/k/0"):
        assert fragment in msg


def test_benchmark_method_must_exist():
    with pytest.raises(InputError, match="names method 'dense'"):
        validate_config({"name": "x", "benchmarks": {"b": {"loader": "nq", "source": {"path": "p"},
                                                         "methods": ["dense"]}}, "methods": {"oracle": {}}})


def test_missing_profile_file(tmp_path):
    with pytest.raises(InputError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")


def test_benchmark_overrides_and_vision_are_checked():
    from lmem.config import method_spec

    cfg = load_config(ROOT / "config" / "demo_full.yaml")
    assert method_spec(cfg, "latent_memory", "synth-vqa")["compressor"] == "smollm2_vqa"
    assert method_spec(cfg, "latent_memory", "synth")["compressor"] == "smollm2"
    base = {"name": "x", "methods": {"closed_book": {}},
            "vision": {"v": {"train_data": {"loader": "webqa", "source": {"synth_vqa": {}}}}}}
    bench = {"loader": "webqa", "source": {"synth_vqa": {}}}
    with pytest.raises(InputError, match="overrides method 'dense'"):
        validate_config({**base, "benchmarks": {"b": {**bench, "overrides": {"dense": {}}}}})
    with pytest.raises(InputError, match="names vision 'w'"):
        validate_config({**base, "benchmarks": {"b": {**bench, "vision": "w"}}})
    with pytest.raises(InputError, match="override of 'closed_book' names compressor 'c'"):
        validate_config({**base, "benchmarks": {"b": {**bench, "overrides": {"closed_book": {"compressor": "c"}}}}})


@pytest.mark.parametrize("section,entry,train,error", [
    ("compressors", "smollm2", {"distill_target": "oracle"}, "distill_target must be teacher_answer or gold_answer"),
    ("compressors", "smollm2", {"stepz": 3}, "unknown training options"),
    ("compressors", "smollm2", {"steps": 10, "reading_warmup": 20}, "reading_warmup must be between 0 and steps"),
    ("compressors", "smollm2", {"distill_types": "single"}, "distill_types must be a non-empty list"),
    ("compressors", "smollm2", {"distill_memory": 5, "distill_negatives": 1}, "distill_memory and distill_negatives"),
    ("compressors", "smollm2", {"distill_memory": -1}, "distill_memory must be 0"),
    ("projectors", "minilm", {"w_kll": 1.0}, "unknown xRAG training options"),
])
def test_training_options_are_checked_when_the_profile_loads(tmp_path, section, entry, train, error):
    """A bad `train` section fails at load, naming the file and the entry (it used to fail after the models)."""
    import yaml

    config = yaml.safe_load((ROOT / "config/ci.yaml").read_text())
    config[section][entry]["train"] = train
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(InputError, match=f"bad.yaml: {section}.{entry}.train: {error}"):
        load_config(path)


@pytest.mark.parametrize("methods,overrides,error", [
    ({"bm25": {"k": [5], "k1": -1}}, None, r"methods.bm25.k1: -1 is less than or equal to the minimum of 0"),
    ({"bm25": {"k": [5], "with_titel": True}}, None, r"methods.bm25: unknown option\(s\) \['with_titel'\] for method "
                                                    r"'bm25' \(.*baselines/bm25.py\); it takes \['b', 'k1', 'with_title'\]"),
    ({"dense_max": {"class": "dense", "pooling": "max"}}, None, r"methods.dense_max.pooling: 'max' is not one of "
                                                                r"\['mean', 'last'\]"),
    ({"bm26": {"k": [5]}}, None, r"methods.bm26: unknown method 'bm26'; known: \[.*'bm25'"),
    ({}, {"bm25": {"k1": "high"}}, r"benchmarks.hotpotqa.overrides.bm25.k1: 'high' is not of type 'number'"),
])
def test_method_options_are_checked_when_the_profile_loads(tmp_path, methods, overrides, error):
    """Each method's options, declared next to it (its class's `options`), checked against every entry and
    benchmark override when the profile loads: the file, the entry, the key and what is allowed."""
    import yaml

    config = yaml.safe_load((ROOT / "config/ci.yaml").read_text())
    config["methods"].update(methods)
    if overrides:
        config["benchmarks"]["hotpotqa"]["overrides"] = overrides
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(InputError, match=f"bad.yaml: {error}"):
        load_config(path)


def test_a_methods_options_and_defaults_are_declared_once(tmp_path, monkeypatch):
    from baselines.bm25 import BM25
    from lmem.method_options import declared_methods

    assert BM25({}, {}).option("k1") == 1.5 and BM25({"k1": 1.2}, {}).option("k1") == 1.2
    with pytest.raises(KeyError, match="declares no option 'k2'"):
        BM25({}, {}).option("k2")
    assert declared_methods()["bm25"]["options"]["k1"]["default"] == 1.5  # read from the source, not imported
    # a method kept outside the repository (LMEM_BASELINES) is declared and checked the same way, its bases' options
    # (here none: TextEvidenceBaseline declares none) included
    (tmp_path / "mine.py").write_text(
        "from lmem.baselines import TextEvidenceBaseline\n\n\nclass Mine(TextEvidenceBaseline):\n    name = 'mine'\n"
        "    options = {'depth': {'type': 'integer', 'minimum': 1, 'default': 2}}\n")
    monkeypatch.setenv("LMEM_BASELINES", str(tmp_path))
    assert declared_methods()["mine"]["options"] == {"depth": {"type": "integer", "minimum": 1, "default": 2}}
    base = {"name": "x", "benchmarks": {"b": {"loader": "nq", "source": {"path": "p"}}}}
    validate_config({**base, "methods": {"mine": {"depth": 3}}})
    with pytest.raises(InputError, match="methods.mine.depth: 0 is less than the minimum of 1"):
        validate_config({**base, "methods": {"mine": {"depth": 0}}})


@pytest.mark.parametrize("change,error", [
    ({"lora_rr": 3}, r"compressors.smollm2: unknown compressor options \['lora_rr'\]; known: \[.*'lora_r'"),
    ({"dtype": "int3"}, r"compressors.smollm2: dtype must be one of float32, bfloat16, float16; got 'int3'"),
    ({"index": {"nprob": 3}}, r"compressors.smollm2.index: unknown index options \['nprob'\]; known: \[.*'nprobe'"),
    ({"index": {"storages": ["pq9"]}}, r"compressors.smollm2.index: storages must be a non-empty list of fp16, int8, pq"),
    # against the compressor's retrieval_dim (512), before any index is built (also one that falls back to flat)
    ({"index": {"faiss": "ivfpq", "refine": 96}}, r"compressors.smollm2.index: refine 96 must divide the 512 "
                                                  r"dimensions the codes cover .*pick a divisor of 512"),
    ({"retrieval_dim": 64, "index": {"faiss": "ivfpq", "pca": 128}},
     r"compressors.smollm2.index: pca 128 is more than the retrieval embeddings' 64 dimensions"),
    ({"val_data": {"loader": "hotpotqa", "source": {"pth": "x"}}},
     r"at compressors/smollm2/val_data/source: Additional properties are not allowed \('pth' was unexpected\)"),
])
def test_compressor_index_and_data_options_are_checked_when_the_profile_loads(tmp_path, change, error):
    """The compressor entry (lmem.options.CompressorConfig), its index section (IndexConfig) and its data specs
    (config/schema.yaml), each checked at load, naming the file, the entry and the key."""
    import yaml

    config = yaml.safe_load((ROOT / "config/ci.yaml").read_text())
    config["compressors"]["smollm2"].update(change)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(InputError, match=f"bad.yaml: (.|\n)*{error}"):
        load_config(path)


@pytest.mark.parametrize("second,error", [
    ({"init_from": "smollm3"}, r"compressors.second.init_from names 'smollm3', which is not under compressors"),
    ({"init_from": "second"}, r"compressors.second.init_from goes round in a circle \(second -> second\)"),
    ({"init_from": "smollm2", "lora_r": 8}, r"compressors.second.init_from: 'smollm2' builds another compressor "
                                           r"\(its lora_r differ\)"),
])
def test_a_second_stage_starts_from_a_compressor_of_its_own_shape(tmp_path, second, error):
    """init_from names another compressor entry, of the same compressor keys, with no cycle: checked at load."""
    import yaml

    config = yaml.safe_load((ROOT / "config/ci.yaml").read_text())
    first = next(n for n, c in config["compressors"].items() if "init_from" not in c)
    config["compressors"]["second"] = dict(config["compressors"][first], **second)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(InputError, match=f"bad.yaml: {error}"):
        load_config(path)
    config["compressors"]["second"] = dict(config["compressors"][first], init_from=first)
    path.write_text(yaml.safe_dump(config))
    assert load_config(path)["compressors"]["second"]["init_from"] == first


def test_an_unknown_key_error_lists_the_allowed_keys():
    with pytest.raises(InputError, match=r"at generator: Additional properties are not allowed \('max_new_token' was "
                                         r"unexpected\); allowed: \[.*'max_new_tokens'"):
        validate_config({"name": "x", "benchmarks": {"b": {"loader": "nq", "source": {"path": "p"}}},
                         "methods": {"oracle": {}}, "generator": {"max_new_token": 3}})
