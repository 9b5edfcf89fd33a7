"""Stage `prepare`: load one benchmark per its config entry and write the prepared examples as JSONL.

Prepared data are cached on disk keyed by the loader spec (and the source file's hash), so profiles that share a
benchmark definition reuse it. Usage: python -m lmem.prepare --benchmark NAME --spec JSON --out FILE.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path


from lmem import __version__
from lmem.data import load_examples
from lmem.io import atomic_path, read_jsonl, sha256_file, sha256_json, write_json, write_jsonl
from lmem.metrics.qa import metric_for
from lmem.models import cache_dir
from lmem.records import Example
from lmem.stage import parse_spec, setup

log = logging.getLogger("lmem.prepare")


def meta_path(out: str) -> str:
    return out[: -len(".jsonl")] + ".meta.json" if out.endswith(".jsonl") else out + ".meta.json"


def loader_code_hash() -> str:
    """Hash of the data package's source, so a loader change invalidates cached prepared data."""
    here = Path(__file__).parent
    files = sorted((here / "data").glob("*.py")) + [here / "io.py", here / "records.py"]
    return sha256_json([f.read_text() for f in files])


def prepare(benchmark: str, spec: dict, out: str) -> dict:
    """Load, validate and write one benchmark. Nothing is written unless every record loaded (or was skipped under
    on_bad_record: skip); the data and its meta land atomically, in a folder made if missing."""
    metric = metric_for(spec)
    source = spec.get("source", {})
    source_hash = sha256_file(source["path"]) if source.get("path") else None
    key = sha256_json({"benchmark": benchmark, "spec": spec, "source_sha256": source_hash, "version": __version__,
                       "loader_code": loader_code_hash()})
    cached = cache_dir() / "data" / f"{benchmark}-{key[:16]}.jsonl"
    if cached.exists() and (cached.parent / (cached.name + ".meta.json")).exists():
        log.info("%s: reusing prepared data %s", benchmark, cached)
        meta = json.loads((cached.parent / (cached.name + ".meta.json")).read_text())
    else:
        result = load_examples(benchmark, spec)
        if not result.examples:
            raise SystemExit(f"{benchmark}: the source {result.source} gave no examples; check source and limit")
        meta = {"benchmark": benchmark, "n": len(result.examples), "n_skipped": result.n_skipped,
                "skipped": result.skipped[:50], "source": result.source, "source_sha256": source_hash,
                "spec": spec, "cache_key": key, "metric": metric,
                "n_control_chars": result.repairs.n_control_chars,
                "n_truncated_items": result.repairs.n_truncated_items,
                "n_empty_answers": result.repairs.n_empty_answers, "repairs": result.repairs.examples}
        write_jsonl(cached, (ex.to_dict() for ex in result.examples))
        meta["sha256"] = sha256_file(cached)
        write_json(cached.parent / (cached.name + ".meta.json"), meta)
        log.info("%s: %d examples (%d skipped) from %s", benchmark, meta["n"], meta["n_skipped"], result.source)
        if meta["n_truncated_items"] or meta["n_control_chars"]:
            log.warning("%s: %d evidence item(s) cut to max_item_chars, %d control character(s) removed (counted in "
                        "the results; first: %s)", benchmark, meta["n_truncated_items"], meta["n_control_chars"],
                        "; ".join(result.repairs.examples[:3]))
    with atomic_path(out) as tmp:
        shutil.copyfile(cached, tmp)
    write_json(meta_path(out), meta)
    return meta


def read_examples(path: str) -> list[Example]:
    return [Example.from_dict(d) for d in read_jsonl(path)]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--benchmark", required=True)
    ap.add_argument("--spec", required=True, help="the benchmark's config entry, JSON or @file")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    setup()
    prepare(args.benchmark, parse_spec(args.spec), args.out)


if __name__ == "__main__":
    main()
