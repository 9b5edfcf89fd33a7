"""Small I/O helpers: atomic writes, JSON/JSONL reading with errors that name the file and line, hashing."""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import json
import os
import shutil
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
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a written file gets the usual mode (0644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
        return gzip.open(path, "rb")
    return open(path, "rb")


def _decoded_lines(path: Path) -> Iterator[tuple[int, str | InputError]]:
    """(line number, text) of a UTF-8 (optionally gzipped) file; a line that is not UTF-8 gives an InputError naming
    the file, the line and the byte, in place of its text."""
    with _open_text(path) as f:
        for lineno, raw in enumerate(f, 1):
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield lineno, InputError(
                    f"{path}:{lineno}: not UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1}); re-encode the "
                    f"file as UTF-8 (e.g. iconv -f latin1 -t utf-8)")


def _jsonl_lines(path: Path) -> Iterator[tuple[int, dict | InputError]]:
    for lineno, line in _decoded_lines(path):
        if isinstance(line, InputError):
            yield lineno, line
            continue
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            yield lineno, InputError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno}); fix or remove "
                                     f"that line")
            continue
        if not isinstance(obj, dict):
            yield lineno, InputError(f"{path}:{lineno}: expected a JSON object per line, got {type(obj).__name__}")
            continue
        yield lineno, obj


def read_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    """Yield the objects of a JSONL (optionally gzipped) file; a bad line raises InputError naming it."""
    for _, obj in _jsonl_lines(Path(path)):
        if isinstance(obj, InputError):
            raise obj
        yield obj


def _is_json_lines(path: Path) -> bool:
    """True when the file holds one JSON object per line (JSONL under any name), False for one JSON document."""
    with _open_text(path) as f:
        lines = (raw for raw in f if raw.strip())
        first, second = next(lines, b""), next(lines, None)
    if second is None or not first.lstrip().startswith(b"{"):
        return False
    try:
        return isinstance(json.loads(first), dict)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def _tsv_rows(path: Path) -> Iterator[tuple[str, dict | InputError]]:
    lines = _decoded_lines(path)
    header = None
    for lineno, line in lines:
        if isinstance(line, InputError):
            if header is None:
                raise line
            yield f"{path}: line {lineno}", line
            continue
        cells = next(csv.reader([line.rstrip("\r\n")], delimiter="\t", quoting=csv.QUOTE_NONE), [])
        if header is None:
            header = cells
            continue
        if not line.strip():
            continue
        loc = f"{path}: line {lineno}"
        if len(cells) != len(header):
            yield loc, InputError(f"{loc}: {len(cells)} tab-separated columns where the header has {len(header)} "
                                  f"({header}); a tab inside a field or a cut line? Fix or remove that line")
            continue
        yield loc, dict(zip(header, cells))


def read_records(path: str | os.PathLike) -> Iterator[tuple[str, dict | InputError]]:
    """Yield (location, record) from a .tsv, a JSONL file (by content, whatever its name: `.json` files holding one
    object per line, as several public HotpotQA copies do, are read as JSONL) or a .json file holding a list or a
    dict of records; all optionally gzipped. A line that cannot be read (not UTF-8, not JSON, a TSV line with the
    wrong number of columns) is yielded as an InputError in place of its record, for the caller to raise or skip."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file; set the benchmark's source.path in the config to an existing file")
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    if name.endswith(".tsv"):
        yield from _tsv_rows(path)
        return
    if name.endswith(".jsonl") or _is_json_lines(path):
        for lineno, obj in _jsonl_lines(path):
            yield f"{path}: line {lineno}", obj
        return
    with _open_text(path) as f:
        raw = f.read()
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not UTF-8 (byte {raw[e.start]:#04x}); re-encode the file as UTF-8") from e
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON at line {e.lineno}, column {e.colno} ({e.msg})") from e
    if isinstance(data, list):
        for i, obj in enumerate(data, 1):
            yield f"{path}: record {i}", obj
    elif isinstance(data, dict) and data and all(isinstance(v, dict) for v in data.values()):
        for key, obj in data.items():  # e.g. WebQA_train_val.json: {guid: record}
            if isinstance(obj, dict):
                obj = {"_key": key, **obj}
            yield f"{path}: record {key!r}", obj
    elif isinstance(data, dict):  # one record
        yield f"{path}: record 1", data
    else:
        raise InputError(f"{path}: expected a JSON list or object of records, got {type(data).__name__}")


def move_entries(source: Path, final: Path, skip=lambda name: False) -> None:
    """Rename each entry of folder `source` (but those `skip(name)` holds for) into `final`, replacing a folder of
    the same name there (the DAG makes the output folder before the job runs): how finished work and a seed are
    put in place, each entry at once, never half."""
    final.mkdir(parents=True, exist_ok=True)
    for entry in sorted(source.iterdir()):
        if skip(entry.name):
            continue
        target = final / entry.name
        if target.is_dir():
            shutil.rmtree(target)
        entry.rename(target)


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
    path = Path(path)
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


def register(registry: dict, name: str, obj: Any, what: str) -> None:
    """registry[name] = obj, refusing a second, different object under a name already taken (the same class or
    function defined again by re-importing its module is the same one); `what` names the kind, plural
    ("loaders")."""
    old = registry.get(name)

    def where(o) -> str:
        return f"{o.__module__}.{o.__qualname__}"

    if old is not None and where(old) != where(obj):
        raise ValueError(f"two {what} are named {name!r}: {where(old)} and {where(obj)}; rename one")
    registry[name] = obj
