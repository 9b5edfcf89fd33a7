"""Run configuration: YAML profiles validated against config/schema.yaml, with the schema's defaults filled in."""

from __future__ import annotations

import copy
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators

from lmem.io import InputError, sha256_json
from lmem.method_options import check_method_options
from lmem.options import CompressorConfig, IndexConfig, TrainConfig, VisionTrainConfig, XragTrainConfig

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "config" / "schema.yaml"


def _with_defaults(cls):
    validate_props = cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from validate_props(validator, properties, instance, schema)

    def additional(validator, aps, instance, schema):  # defaults inside additionalProperties too
        if isinstance(instance, dict) and isinstance(aps, dict):
            for key, value in instance.items():
                if key not in schema.get("properties", {}):
                    yield from validator.descend(value, aps, path=key)
        elif aps is False:
            yield from cls.VALIDATORS["additionalProperties"](validator, aps, instance, schema)

    return validators.extend(cls, {"properties": set_defaults, "additionalProperties": additional})


_Validator = _with_defaults(Draft202012Validator)


def _allowed(error) -> str:
    """What the schema allows where a key was unexpected (jsonschema's message names only the key)."""
    if error.validator == "additionalProperties" and isinstance(error.schema.get("properties"), dict):
        return f"; allowed: {sorted(error.schema['properties'])}"
    return ""


def validate_config(config: dict, source: str = "config") -> dict:
    """Validate `config` in place (filling defaults); raise InputError listing every problem."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    errors = sorted(_Validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  - at {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}{_allowed(e)}" for e in errors]
        raise InputError(f"{source}: invalid configuration:\n" + "\n".join(lines))
    for name, bench in config["benchmarks"].items():
        for m in bench.get("methods") or []:
            if m not in config["methods"]:
                raise InputError(f"{source}: benchmark {name!r} names method {m!r}, which is not under methods")
        for m in bench.get("overrides") or {}:
            if m not in config["methods"]:
                raise InputError(f"{source}: benchmark {name!r} overrides method {m!r}, which is not under methods")
        if bench.get("vision") and bench["vision"] not in config["vision"]:
            raise InputError(f"{source}: benchmark {name!r} names vision {bench['vision']!r}, which is not under "
                             "vision")
    entries = [(f"method {n!r}", m) for n, m in config["methods"].items()]
    entries += [(f"benchmark {b!r}'s override of {n!r}", m) for b, bench in config["benchmarks"].items()
                for n, m in (bench.get("overrides") or {}).items()]
    entries += [(f"compressor {n!r}", c) for n, c in config.get("compressors", {}).items()]
    for where, m in entries:
        for key, section in (("compressor", "compressors"), ("projector", "projectors"), ("vision", "vision")):
            if isinstance(m.get(key), str) and m[key] not in config[section]:
                raise InputError(f"{source}: {where} names {key} {m[key]!r}, which is not under {section}")
    check_training_options(config, source)
    check_init_from(config, source)
    shared = set(schema["properties"]["methods"]["additionalProperties"]["properties"])
    entries = [(f"methods.{n}", method_spec(config, n)) for n in config["methods"]]
    entries += [(f"benchmarks.{b}.overrides.{n}", method_spec(config, n, b)) for b, bench in
                config["benchmarks"].items() for n in bench.get("overrides") or {}]
    check_method_options(entries, shared, source)
    return config


def check_training_options(config: dict, source: str) -> None:
    """Every `train` section read as its trainer will read it, and every compressor entry and its `index` section
    as the compressor and the index stage will, so an unknown key or a bad value fails when the profile loads, not
    after the models have (lmem.options)."""
    for section, cls in (("compressors", TrainConfig), ("projectors", XragTrainConfig), ("vision", VisionTrainConfig)):
        for name, entry in (config.get(section) or {}).items():
            try:
                cls.from_dict(dict(entry.get("train") or {}))
            except (TypeError, ValueError) as e:
                raise InputError(f"{source}: {section}.{name}.train: {e}") from None
    for name, entry in (config.get("compressors") or {}).items():  # the compressor itself and its latent index
        where = f"compressors.{name}"
        try:
            compressor = CompressorConfig.from_dict(dict(entry))
            where += ".index"
            IndexConfig.from_dict(dict(entry.get("index") or {})).check_dims(compressor.retrieval_dim)
        except (TypeError, ValueError) as e:
            raise InputError(f"{source}: {where}: {e}") from None


def check_init_from(config: dict, source: str) -> None:
    """Each compressor's `init_from` names another compressor entry that builds the same compressor (so its weights
    load into this one), and following init_from ends (no cycle)."""
    entries = config.get("compressors") or {}
    for name, entry in entries.items():
        chain = [name]
        while entries[chain[-1]].get("init_from") is not None:
            parent = entries[chain[-1]]["init_from"]
            if parent not in entries:
                raise InputError(f"{source}: compressors.{chain[-1]}.init_from names {parent!r}, which is not under "
                                 f"compressors (known: {sorted(entries)})")
            if parent in chain:
                raise InputError(f"{source}: compressors.{name}.init_from goes round in a circle "
                                 f"({' -> '.join(chain + [parent])}); a first stage starts from the base model")
            chain.append(parent)
        parent = entry.get("init_from")
        if parent is None:
            continue
        mine, theirs = (asdict(CompressorConfig.from_dict(dict(e))) | {"vision": e.get("vision")}
                        for e in (entry, entries[parent]))
        differ = sorted(k for k in mine if mine[k] != theirs[k])
        if differ:
            raise InputError(f"{source}: compressors.{name}.init_from: {parent!r} builds another compressor (its "
                             f"{', '.join(differ)} differ), so its weights cannot load into this one; give both "
                             "entries the same compressor keys")


def load_config(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such config file (profiles live in config/, e.g. config/demo.yaml)")
    return validate_config(yaml.safe_load(path.read_text()) or {}, str(path))


def config_hash(config: dict) -> str:
    return sha256_json(config)[:12]


def runs(config: dict) -> list[tuple[str, str, str]]:
    """Every (benchmark, method, k) the profile asks for; k is 'all' for methods without top-k."""
    out = []
    for bench, spec in config["benchmarks"].items():
        for method in spec.get("methods") or list(config["methods"]):
            ks = config["methods"][method].get("k")
            out += [(bench, method, str(k)) for k in ks] if ks else [(bench, method, "all")]
    return out


def method_spec(config: dict, method: str, benchmark: str | None = None) -> dict[str, Any]:
    """A method's config entry, with the benchmark's `overrides` for it applied."""
    spec = dict(config["methods"][method])
    if benchmark is not None:
        spec.update(config["benchmarks"][benchmark].get("overrides", {}).get(method, {}))
    return spec
