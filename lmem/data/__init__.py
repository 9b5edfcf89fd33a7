"""Benchmark loaders: each benchmark is one module that turns an official record into an `Example`.

A loader is registered by name with `@register_loader("name")`; its function receives one raw record (from the
benchmark's official file or from the hub through `datasets`), the record's location for error messages and the
loader options, and returns an `Example`. `load_examples` drives any loader from a config spec.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from lmem.io import InputError, read_records
from lmem.records import Evidence, Example

ConvertFn = Callable[[dict, str, dict], "Example | None"]
LOADERS: dict[str, ConvertFn] = {}


class RecordError(InputError):
    """A malformed benchmark record; the message names the file, the record and what is wrong."""


def register_loader(name: str) -> Callable[[ConvertFn], ConvertFn]:
    def deco(fn: ConvertFn) -> ConvertFn:
        LOADERS[name] = fn
        return fn

    return deco


def require(record: dict, key: str, loc: str, types: type | tuple = object) -> Any:
    """Return record[key], raising RecordError (naming the record) if it is missing or of the wrong type."""
    if not isinstance(record, dict):
        raise RecordError(f"{loc}: expected a JSON object, got {type(record).__name__}")
    if key not in record or record[key] is None:
        raise RecordError(f"{loc}: missing field '{key}' (present: {sorted(record)[:12]})")
    value = record[key]
    if not isinstance(value, types):
        raise RecordError(f"{loc}: field '{key}' should be {types}, got {type(value).__name__}")
    return value


def sentence_pool(paragraphs: list[tuple[str, list[str]]], gold: Callable[[str, int, int], bool]) -> list[Evidence]:
    """Flatten (title, sentences) paragraphs into a pool of sentence evidence with stable ids `p<i>s<j>`."""
    pool = []
    for pi, (title, sents) in enumerate(paragraphs):
        for si, s in enumerate(sents):
            s = s.strip()
            if s:
                pool.append(Evidence(id=f"p{pi}s{si}", text=s, title=title, gold=gold(title, pi, si)))
    return pool


def contains_answer(text: str, answers: list[str]) -> bool:
    """Answer-string match after SQuAD normalisation (used for gold when a benchmark marks none)."""
    from lmem.metrics.qa import normalize_answer

    norm = f" {normalize_answer(text)} "
    return any(a and f" {normalize_answer(a)} " in norm for a in answers if normalize_answer(a))


@dataclass
class LoadResult:
    examples: list[Example]
    n_skipped: int
    skipped: list[str]
    source: str


def _iter_source(source: dict) -> Iterator[tuple[str, dict]]:
    if source.get("synth"):
        from lmem.data.synth import generate_records

        yield from generate_records(source["synth"])
        return
    if source.get("synth_vqa"):
        from lmem.data.synth_vqa import generate_records as generate_vqa

        yield from generate_vqa(source["synth_vqa"])
        return
    if source.get("path"):
        yield from read_records(source["path"])
        return
    hub = source.get("hub")
    if not hub:
        raise InputError("benchmark source needs either 'path' (official file) or 'hub' {id, config, split}")
    try:
        import datasets

        ds = datasets.load_dataset(hub["id"], hub.get("config"), split=hub.get("split", "validation"))
    except Exception as e:  # offline, unknown id, ...: say what to do instead
        raise InputError(
            f"could not load hub dataset {hub['id']!r} (config {hub.get('config')!r}, split {hub.get('split')!r}): "
            f"{type(e).__name__}: {e}. Offline? Point the benchmark's source.path at the official file instead."
        ) from e
    for i, row in enumerate(ds):
        yield f"hub {hub['id']}/{hub.get('config')}/{hub.get('split')}: row {i}", dict(row)


def load_examples(benchmark: str, spec: dict) -> LoadResult:
    """Load and convert a benchmark's records per its config spec (loader, source, offset, limit, on_bad_record,
    options). `offset` skips that many converted examples first (e.g. validation questions held out after a test
    slice of the same split)."""
    _discover()
    name = spec["loader"]
    if name not in LOADERS:
        raise InputError(f"unknown loader {name!r} for benchmark {benchmark!r}; known: {sorted(LOADERS)}")
    convert = LOADERS[name]
    opts = dict(spec.get("options", {}))
    opts["benchmark"] = benchmark
    if spec.get("source", {}).get("synth_vqa"):  # its images are rendered from their ids
        opts.setdefault("image_prefix", "synth-vqa")
    limit, offset = spec.get("limit"), spec.get("offset", 0)
    on_bad = spec.get("on_bad_record", "error")
    examples, skipped = [], []
    source = spec.get("source", {})
    for loc, record in _iter_source(source):
        if limit is not None and len(examples) >= limit:
            break
        try:
            try:
                ex = convert(record, loc, opts)
            except RecordError:
                raise
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
                raise RecordError(f"{loc}: malformed record ({type(e).__name__}: {e})") from e
        except RecordError as e:
            if on_bad == "skip":
                skipped.append(str(e))
                continue
            raise RecordError(f"{e}. Fix the record, or set on_bad_record: skip to skip and count such records") from e
        if ex is not None and offset > 0:
            offset -= 1
        elif ex is not None:  # None: the record is outside the selection (e.g. another split)
            examples.append(ex)
    generated = {k: source[k] for k in ("synth", "synth_vqa") if k in source}
    origin = source.get("path") or str(source.get("hub") or generated)
    return LoadResult(examples, len(skipped), skipped, origin)


def _discover() -> None:
    for mod in pkgutil.iter_modules(__path__):
        if mod.name not in ("sentences",):
            importlib.import_module(f"{__name__}.{mod.name}")
