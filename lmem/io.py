"""Small I/O helpers: atomic writes, JSON/JSONL reading with errors that name the file and line, hashing."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator


class InputError(ValueError):
    """Bad input: the message names the file, the record and what to do."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True) + "\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def read_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    """Yield the objects of a JSONL (optionally gzipped) file; a bad line raises InputError naming it."""
    path = Path(path)
    with _open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{lineno}: not valid JSON ({e.msg}); fix or remove that line") from e
            if not isinstance(obj, dict):
                raise InputError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            yield obj


def read_records(path: str | os.PathLike) -> Iterator[tuple[str, dict]]:
    """Yield (location, record) from a .jsonl[.gz] file or a .json file holding a list or a dict of records."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file; set the benchmark's source.path in the config to an existing file")
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    if name.endswith(".tsv"):
        import csv

        with _open_text(path) as f:
            for i, row in enumerate(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE), 1):
                yield f"{path}: line {i + 1}", dict(row)
        return
    if name.endswith(".jsonl"):
        for i, obj in enumerate(read_jsonl(path), 1):
            yield f"{path}: record {i}", obj
        return
    with _open_text(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}: not valid JSON at line {e.lineno} ({e.msg})") from e
    if isinstance(data, list):
        for i, obj in enumerate(data, 1):
            yield f"{path}: record {i}", obj
    elif isinstance(data, dict):  # e.g. WebQA_train_val.json: {guid: record}
        for key, obj in data.items():
            if isinstance(obj, dict):
                obj = {"_key": key, **obj}
            yield f"{path}: record {key!r}", obj
    else:
        raise InputError(f"{path}: expected a JSON list or object of records, got {type(data).__name__}")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def append_csv(path: str | os.PathLike, row: dict) -> None:
    """Append one row to a CSV log (header written with the first row); a log, so appended in place."""
    import csv

    path = Path(path)
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)
