"""Each method's options, declared next to the method and checked when a profile loads.

A method class declares its own options as a literal class attribute, JSON-schema properties with defaults:

    class BM25(TextEvidenceBaseline):
        name = "bm25"
        options = {"k1": {"type": "number", "exclusiveMinimum": 0, "default": 1.5}, ...}

and reads them with `self.option("k1")` (the entry's value, else that default: defaults live in the declaration).
A subclass has its bases' options too. The keys every method entry may carry (k, class, compressor, projector,
checkpoint, retrieval, memory, storage, latent_layout, generator) are in config/schema.yaml.

When a profile loads (lmem.config.validate_config, so `snakemake -n` too) every method entry, with each
benchmark's overrides applied, is checked against its class's options: an unknown class, an unknown key or a bad
value is an error naming the file, the entry, the key and what is allowed. The declarations are read from the
sources (`ast`), not imported, so checking a profile loads no model library: lmem/baselines.py (the base
classes), the repository's baselines/ and the folders named by `LMEM_BASELINES`.
"""

from __future__ import annotations

import ast
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema

from lmem.io import InputError

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Declared:
    """A method class as its source declares it."""

    cls: str
    file: str
    name: str = ""
    bases: list[str] = field(default_factory=list)
    options: dict = field(default_factory=dict)


def _literal(node: ast.ClassDef, attr: str):
    for stmt in node.body:
        target = stmt.targets[0] if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 else getattr(
            stmt, "target", None)
        if isinstance(target, ast.Name) and target.id == attr and getattr(stmt, "value", None) is not None:
            return ast.literal_eval(stmt.value)
    return None


def _classes(path: Path) -> list[Declared]:
    out = []
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.ClassDef):
            try:
                options, name = _literal(node, "options"), _literal(node, "name")
            except ValueError as e:
                raise InputError(f"{path}: class {node.name}: `options` and `name` must be literals ({e})") from e
            out.append(Declared(node.name, str(path), name or "", [ast.unparse(b).split(".")[-1] for b in node.bases],
                                options or {}))
    return out


def method_folders() -> list[Path]:
    return [ROOT / "baselines"] + [Path(f) for f in os.environ.get("LMEM_BASELINES", "").split(os.pathsep) if f]


@functools.lru_cache(maxsize=None)
def _declared(folders: tuple[str, ...]) -> dict[str, dict]:
    classes = _classes(ROOT / "lmem" / "baselines.py")
    for folder in map(Path, folders):
        classes += [c for f in sorted(folder.glob("*.py")) for c in _classes(f)]
    by_class = {c.cls: c for c in classes}

    def options(c: Declared) -> dict:
        merged = {}
        for base in c.bases:
            if base in by_class and base != c.cls:
                merged |= options(by_class[base])
        return merged | c.options

    return {c.name: {"file": c.file, "options": options(c)} for c in classes if c.name}


def declared_methods() -> dict[str, dict]:
    """Registered method name -> {"file", "options"} (its own and its bases' options), read from the sources."""
    return _declared(tuple(str(f) for f in method_folders() if f.is_dir()))


def method_option(spec: dict, cls: str, key: str):
    """An entry's value of option `key` of method `cls`, else the declared default (for code that plans runs
    without importing the method, lmem/specs.py)."""
    return spec.get(key, declared_methods()[cls]["options"][key].get("default"))


def check_method_options(entries: list[tuple[str, dict]], shared: set[str], source: str) -> None:
    """Each (where, method entry) of a profile, overrides applied, against its class's declared options; `shared`:
    the keys config/schema.yaml allows every entry."""
    methods = declared_methods()
    for where, spec in entries:
        cls = spec.get("class", where.rsplit(".", 1)[-1])
        if cls not in methods:
            raise InputError(f"{source}: {where}: unknown method {cls!r}; known: {sorted(methods)}. Add "
                             "baselines/<name>.py or a module in a folder named by LMEM_BASELINES")
        options = methods[cls]["options"]
        unknown = sorted(set(spec) - shared - set(options))
        if unknown:
            raise InputError(f"{source}: {where}: unknown option(s) {unknown} for method {cls!r} "
                             f"({methods[cls]['file']}); it takes {sorted(options)} besides {sorted(shared)}")
        schema = {"type": "object", "properties": options}
        for error in jsonschema.Draft202012Validator(schema).iter_errors({k: spec[k] for k in options if k in spec}):
            key = "/".join(map(str, error.absolute_path))
            raise InputError(f"{source}: {where}.{key}: {error.message} (method {cls!r}, {methods[cls]['file']}; "
                             f"allowed: {options[error.absolute_path[0]]})")


def option_defaults(cls: type) -> dict:
    """A method class's declared options (its bases' included) -> their defaults (None where none is declared)."""
    merged = {}
    for klass in reversed(cls.__mro__):
        merged |= {k: v.get("default") for k, v in getattr(klass, "options", {}).items()}
    return merged
