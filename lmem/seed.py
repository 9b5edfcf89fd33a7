"""Seeded work: trained work that a reference carries, taken instead of training when it is the same work.

A profile with `work_seed: DIR` (the ci profile: `results/reference/ci/work`) gives each training job (compressor,
xRAG projector, vision module) the folder `DIR/<kind>/<id>/`, where `<id>` is the job's work id (lmem/work.py: a
hash of the spec, the data files, the models and the training stage's code). If that folder is there, its files
are those its manifest `seed.json` lists (sha256 each) and the installed torch, transformers and peft are the
versions that trained it, the job copies it into the finished work folder instead of training. In every other case
the job trains, as without a seed, and its log says why. A damaged seed (a file missing or changed) fails the job
with the file's name: a seed is taken whole or not at all.

The seed is work that one run trained: `export` copies, from a finished run, the work folders its results table
names (column `work`), and writes each manifest with the run's commit and package versions (from the table and the
`environment.json` beside it). So the ci reference's table and its seed come from the same clean run, and a change
to anything that made the work (training code, spec, data, models) gives another id, which no seed has: CI then
trains from scratch and compares with the reference as before.

Usage:
  python -m lmem.seed export --results RUN/results.csv --work-dir RUN_WORK_DIR --to results/reference/ci/work
  python -m lmem.seed verify results/reference/ci/work          # every seed's files against its manifest
  python -m lmem.seed apply --from SEED/<kind>/<id> --to WORK/<kind>/<id> -- COMMAND...   # a training job's
Exit status: 0 done (or COMMAND's, when it runs), 2 bad input (a damaged seed, an unreadable table).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import os
import shutil
import sys
from pathlib import Path

from lmem.io import InputError, move_entries, sha256_file, write_json

log = logging.getLogger("lmem.seed")

MANIFEST = "seed.json"
PACKAGES = ("torch", "transformers", "peft")  # a seed trained under other versions is not taken (they train)
KINDS = ("compressors", "projectors", "vision")  # lmem.specs.WORK_KINDS' folder names


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def _base(version: str) -> str:
    return version.split("+")[0]  # torch 2.13.0+cpu and 2.13.0 are one release


# -- export: a finished run's work -> seeds ------------------------------------------------------------------
def work_folders(cell) -> list[str]:
    """The work folders (`<kind>/<id>`) one results row's `work` cell names (none for a row that read none)."""
    return ["/".join(w.split("/")[:2]) for w in cell.split()] if isinstance(cell, str) else []


def used_work(df, results: Path) -> list[str]:
    """The work folders a results table (`df`, read from `results`) names in its `work` column."""
    if "work" not in df.columns:
        raise InputError(f"{results}: no `work` column (a table from before lmem named its work): export from a "
                         "run of this version")
    found = {f for cell in df["work"] for f in work_folders(cell)}
    for folder in found:
        kind, _, wid = folder.partition("/")
        if not wid or kind not in KINDS:
            raise InputError(f"{results}: work {folder!r} is not <kind>/<id>/... with a kind of {KINDS}")
    return sorted(found)


def export(results: Path, work_dir: Path, to: Path) -> list[str]:
    """Copy the work `results` used from `work_dir` into `to` (replacing what `to` held), each with its manifest:
    the files' sha256, the run's commit and the package versions of its environment.json."""
    import pandas as pd  # (only export reads a table)

    try:
        df = pd.read_csv(results)
    except (OSError, ValueError) as e:
        raise InputError(f"{results}: cannot read the results table ({e})") from e
    used = used_work(df, results)
    if not used:
        raise InputError(f"{results}: no row read trained work; nothing to export")
    commits = sorted(set(df["git_commit"].astype(str)))
    env_path = results.parent / "environment.json"
    if not env_path.exists():
        raise InputError(f"{env_path}: missing; a seed records the package versions that trained it (the report "
                         "stage writes this file beside results.csv)")
    packages = json.loads(env_path.read_text())["packages"]
    staging = to.parent / f".{to.name}.export"
    shutil.rmtree(staging, ignore_errors=True)
    for rel in used:
        src = work_dir / rel
        if not (src.is_dir() and _files(src)):
            raise InputError(f"{src}: the work {results} names is not there (pass the run's --work-dir)")
        # work the run itself took from a seed keeps that seed's provenance: its commit trained it, not this run's
        made_by = read_manifest(src) if holds_seed(src) else {"git_commit": commits,
                                                              "packages": {p: packages.get(p) for p in PACKAGES}}
        shutil.copytree(src, staging / rel, ignore=shutil.ignore_patterns(MANIFEST))
        write_json(staging / rel / MANIFEST, {
            "work": rel,
            "git_commit": made_by["git_commit"],
            "packages": made_by["packages"],
            "files": {f: sha256_file(staging / rel / f) for f in _files(staging / rel)},
        })
    if to.exists():
        shutil.rmtree(to)
    staging.rename(to)
    return used


# -- verify and apply ----------------------------------------------------------------------------------------
def read_manifest(seed: Path) -> dict:
    path = seed / MANIFEST
    try:
        manifest = json.loads(path.read_text())
        manifest["files"], manifest["packages"]  # noqa: B018 (both keys are required)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"{path}: not a seed manifest ({e}); restore the folder (git checkout) or remove it "
                         "so the job trains") from e
    return manifest


def verify(seed: Path) -> dict:
    """The manifest of `seed`, once every file it lists is there with its sha256 (and no other file is)."""
    manifest = read_manifest(seed)
    extra = sorted(set(_files(seed)) - set(manifest["files"]))
    if extra:
        raise InputError(f"{seed}: files not in its manifest: {extra}; restore the folder (git checkout)")
    for name, digest in manifest["files"].items():
        path = seed / name
        if not path.is_file():
            raise InputError(f"{path}: missing from the seed; restore it (git checkout) or remove {seed}")
        if sha256_file(path) != digest:
            raise InputError(f"{path}: its sha256 is not the manifest's (a Git LFS pointer, or changed by hand); "
                             f"restore it (git checkout) or remove {seed} so the job trains")
    return manifest


def holds_seed(folder: Path) -> bool:
    """Does the work folder hold its seed's weights: a manifest, and every weights file it lists (`*.safetensors`)
    there with the listed sha256? (A folder retrained after seeding, e.g. by `make ci-fresh` in the same results
    folder, keeps the manifest but not those bytes, unless training made exactly the reference's weights.)"""
    try:
        weights = {n: d for n, d in read_manifest(folder)["files"].items() if n.endswith(".safetensors")}
    except InputError:
        return False
    return bool(weights) and all((folder / n).is_file() and sha256_file(folder / n) == d for n, d in weights.items())


def package_mismatch(manifest: dict) -> list[str]:
    """The packages whose installed version is not the one that trained the seed."""
    out = []
    for name, want in manifest["packages"].items():
        try:
            have = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            have = None
        if want is not None and (have is None or _base(have) != _base(want)):
            out.append(f"{name} {have} (seed: {want})")
    return out


def apply(seed: Path, final: Path) -> bool:
    """Copy `seed` into `final` when it is the work there and may be taken; False (after logging why) when the job
    must train instead. A damaged seed raises InputError."""
    if not seed.is_dir():
        log.info("no seed %s (no run with this work id exported one): training", seed)
        return False
    if seed.name != final.name:
        raise InputError(f"{seed}: a seed for work {seed.name} given for {final}")
    manifest = verify(seed)
    mismatch = package_mismatch(manifest)
    if mismatch:
        log.warning("seed %s was trained with other packages (%s): training instead", seed, "; ".join(mismatch))
        return False
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{final.name}.seeding"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(seed, staging, copy_function=shutil.copyfile)  # files dated now, not the checkout's time
    move_entries(staging, final)
    staging.rmdir()
    log.info("seeded %s from %s (trained by commit %s; %d files verified): not training", final, seed,
             ", ".join(manifest.get("git_commit", [])) or "?", len(manifest["files"]))
    return True


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("export", help="copy a finished run's trained work into a seed folder")
    ex.add_argument("--results", required=True, type=Path, help="the run's results.csv")
    ex.add_argument("--work-dir", required=True, type=Path, help="the run's work_dir (default results/work)")
    ex.add_argument("--to", required=True, type=Path, help="the seed folder (replaced), e.g. results/reference/ci/work")
    ve = sub.add_parser("verify", help="check every seed under a folder against its manifest")
    ve.add_argument("folder", type=Path)
    ap_ = sub.add_parser("apply", help="seed a training job's work folder, or run COMMAND (after --) to train")
    ap_.add_argument("--from", dest="seed", required=True, type=Path)
    ap_.add_argument("--to", dest="final", required=True, type=Path)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        if args.cmd == "export":
            for rel in export(args.results, args.work_dir, args.to):
                print(f"exported {args.work_dir / rel} -> {args.to / rel}")
        elif args.cmd == "verify":
            seeds = sorted(p.parent for p in args.folder.glob(f"*/*/{MANIFEST}"))
            if not seeds:
                raise InputError(f"{args.folder}: no seeds (<kind>/<id>/{MANIFEST})")
            for seed in seeds:
                verify(seed)
                print(f"ok {seed}")
        else:
            if not command:
                ap.error("apply: give the training command after --")
            if not apply(args.seed, args.final):
                sys.stdout.flush()
                sys.stderr.flush()
                os.execvp(command[0], command)
    except InputError as e:
        print(f"lmem seed: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
