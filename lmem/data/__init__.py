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

from lmem.data.synth import generate_records
from lmem.data.synth_vqa import generate_records as generate_vqa
from lmem.data.validate import DEFAULT_MAX_ITEM_CHARS, RecordError, Repairs, validate_example
from lmem.io import InputError, read_records, register
from lmem.metrics.qa import normalize_answer
from lmem.records import Evidence, Example

ConvertFn = Callable[[dict, str, dict], "Example | None"]
LOADERS: dict[str, ConvertFn] = {}
_TYPE_NAMES = {str: "a string", list: "a list", dict: "an object", int: "an integer", bool: "true or false",
               float: "a number"}


def _type_name(types: type | tuple) -> str:
    return " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in (types if isinstance(types, tuple) else (types,)))


def register_loader(name: str) -> Callable[[ConvertFn], ConvertFn]:
    def deco(fn: ConvertFn) -> ConvertFn:
        register(LOADERS, name, fn, "loaders")
        return fn

    return deco


def require(record: dict, key: str, loc: str, types: type | tuple = object, where: str = "the record") -> Any:
    """Return record[key], raising RecordError (naming the record and field) if it is missing or of the wrong type.
    `where` names the object being read (e.g. "context paragraph 3") when it is not the record itself."""
    if not isinstance(record, dict):
        raise RecordError(f"{loc}: {where} should be an object with a field '{key}', got {type(record).__name__} "
                          f"{str(record)[:60]!r}")
    if key not in record or record[key] is None:
        raise RecordError(f"{loc}: {where} has no field '{key}' (its fields: {sorted(record)[:12]})")
    value = record[key]
    allowed = types if isinstance(types, tuple) else (types,)
    bad_bool = isinstance(value, bool) and object not in allowed and bool not in allowed  # True is an int
    if not isinstance(value, types) or bad_bool:
        raise RecordError(f"{loc}: field '{key}' of {where} should be {_type_name(types)}, got "
                          f"{type(value).__name__} {str(value)[:60]!r}")
    return value


def require_bool(record: dict, key: str, loc: str, where: str = "the record", default: bool | None = None) -> bool:
    """A true/false field; a string such as "false" is an error (it would read as true)."""
    if default is not None and record.get(key) is None:
        return default
    return require(record, key, loc, bool, where)


def check_index(value: Any, size: int, loc: str, what: str) -> int:
    """An integer index into something of `size` items, or a RecordError saying which pointer points nowhere."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(f"{loc}: {what} should be an integer index, got {type(value).__name__} {value!r}")
    if not 0 <= value < size:
        raise RecordError(f"{loc}: {what} is {value}, outside 0..{size - 1}: it points to no sentence; fix the "
                          f"record's gold pointers")
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
    norm = f" {normalize_answer(text)} "
    return any(a and f" {normalize_answer(a)} " in norm for a in answers if normalize_answer(a))


@dataclass
class LoadResult:
    examples: list[Example]
    n_skipped: int
    skipped: list[str]
    source: str
    repairs: Repairs


def _iter_source(source: dict) -> Iterator[tuple[str, dict]]:
    if source.get("synth"):
        yield from generate_records(source["synth"])
        return
    if source.get("synth_vqa"):
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
    max_chars = spec.get("max_item_chars", DEFAULT_MAX_ITEM_CHARS)
    examples, skipped, seen, repairs = [], [], {}, Repairs()
    source = spec.get("source", {})
    for loc, record in _iter_source(source):
        if limit is not None and len(examples) >= limit:
            break
        try:
            if isinstance(record, InputError):  # a line that could not be read at all
                raise RecordError(str(record))
            ex = _convert(convert, record, loc, opts, name)
            if ex is not None:
                ex = validate_example(ex, loc, max_chars, repairs)
                if ex.id in seen:
                    raise RecordError(f"{loc}: duplicate example id {ex.id!r} (first at {seen[ex.id]}); ids must be "
                                      f"unique within a benchmark")
                seen[ex.id] = loc
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
    return LoadResult(examples, len(skipped), skipped, origin, repairs)


def _convert(convert: ConvertFn, record: dict, loc: str, opts: dict, loader: str) -> Example | None:
    if not isinstance(record, dict):
        raise RecordError(f"{loc}: a record should be a JSON object, got {type(record).__name__} {str(record)[:60]!r}")
    try:
        return convert(record, loc, opts)
    except RecordError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise RecordError(f"{loc}: the record does not have the {loader} loader's shape ({type(e).__name__}: {e}); "
                          f"compare it with the schema in lmem/data/{loader}.py") from e


def _discover() -> None:
    for mod in pkgutil.iter_modules(__path__):
        if mod.name not in ("sentences", "validate"):
            importlib.import_module(f"{__name__}.{mod.name}")
