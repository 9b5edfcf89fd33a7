"""The baseline API: every method in `baselines/` is one module holding one `Baseline` subclass.

A baseline gets the prepared examples, the generator runner and its own config entry, and returns one
`Prediction` per example with the token accounting of what the generator actually received. Subclasses are
registered by their `name` when `baselines/` is imported (`discover()`), and selected in the config's `methods`.
Most baselines only choose evidence: subclass `TextEvidenceBaseline` and implement `select`. A baseline kept
outside the repository lives in a folder named by the environment variable `LMEM_BASELINES` (folders separated
by `:`): every `*.py` file there is imported too. Two classes under one name are an error.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import random
import sys
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from lmem.io import InputError, register, sha256_json
from lmem.method_options import option_defaults
from lmem.prompts import EncodedPrompt
from lmem.records import Evidence, Example, Prediction

REGISTRY: dict[str, type["Baseline"]] = {}


class MethodUnavailable(Exception):
    """Raised by a method that cannot run on this machine (e.g. its model is not available offline). The run is
    recorded as skipped with this message (run log, meta, report), and the rest of the DAG goes on."""


class Baseline:
    """Base class of every method. `uses_k`: the method takes a top-k (k is swept from the config)."""

    name: ClassVar[str] = ""
    uses_k: ClassVar[bool] = True
    # this class's own options: JSON-schema properties with defaults, a literal (lmem/method_options.py reads it
    # from the source to check a profile's entries when it loads); read them with self.option(key)
    options: ClassVar[dict] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")  # its own: a subclass that names none does not take its parent's place
        if name:
            register(REGISTRY, name, cls, "method classes")

    def __init__(self, spec: dict, config: dict, label: str | None = None):
        self.spec = spec  # this method's config entry
        self.config = config  # generator, prompt, retriever and seed sections of the run config
        self.label = label or self.name  # the config entry's name, used in predictions and tables
        self.bytes_per_item: float | None = None  # storage per evidence item, where the method stores its own
        self.models: dict[str, str] = {}  # models/checkpoints the method used besides the generator: name -> id@hash

    def option(self, key: str):
        """The entry's value of a declared option, else its declared default."""
        defaults = option_defaults(type(self))
        if key not in defaults:
            raise KeyError(f"{type(self).__name__} declares no option {key!r}; declare it in its `options`")
        return self.spec.get(key, defaults[key])

    def run(self, examples: list[Example], generator, k: int | None) -> list[Prediction]:
        raise NotImplementedError


class TextEvidenceBaseline(Baseline):
    """Choose evidence per example (best first); the generator answers from its raw text."""

    def select(self, examples: list[Example], k: int | None) -> list[list[Evidence]]:
        raise NotImplementedError

    def prompts(self, examples: list[Example], ranked: list[list[Evidence]], generator) -> list[EncodedPrompt]:
        """Raw evidence prompts (images as the generator's visual tokens when it has a vision module)."""
        by_doc = self.config["prompt"]["evidence_order"] == "document"
        return [generator.encode_evidence(ex.question, ev, self.config["prompt"], document_order(ex, ev) if by_doc
                                          else None) for ex, ev in zip(examples, ranked)]

    def run(self, examples: list[Example], generator, k: int | None) -> list[Prediction]:
        ranked = self.select(examples, k)
        encoded = self.prompts(examples, ranked, generator)
        answers = generator.generate(encoded, desc=f"{self.label} k={k or 'all'}")
        return [make_prediction(ex, self.label, k, answer, [e.id for e in ev], enc)
                for ex, ev, enc, answer in zip(examples, ranked, encoded, answers)]


def document_order(ex: Example, evidence: list[Evidence]) -> dict[str, int]:
    """Where each item goes in a document-ordered prompt: the question's own pool items in pool order, then items
    from other questions' pools (global-corpus retrieval) in rank order."""
    own = {e.id: i for i, e in enumerate(ex.pool)}
    return {**{e.id: len(own) + r for r, e in enumerate(evidence) if e.id not in own}, **own}


def make_prediction(ex: Example, method: str, k: int | None, answer: str, retrieved: list[str], enc) -> Prediction:
    """A Prediction with the token accounting of `enc` (an EncodedPrompt or a LatentPrompt)."""
    return Prediction(
        example_id=ex.id, benchmark=ex.benchmark, method=method, k=str(k) if k else "all", prediction=answer,
        answers=ex.answers, retrieved_ids=retrieved, gold_ids=ex.gold_ids, tokens_full=enc.tokens_full,
        tokens_no_system=enc.tokens_no_system, tokens_context=enc.tokens_context, n_dropped=enc.n_dropped,
        metadata={k_: v for k_, v in ex.metadata.items() if k_ in ("type", "qcate", "modality")},
    )


def shuffled_partners(n: int, seed: int) -> list[int]:
    """The shuffled-memory control's pairing: partner[i] != i, a seeded derangement (one cycle through a seeded
    permutation), so every question gets another question's memory and every memory is used once."""
    if n < 2:
        raise InputError("the shuffled-memory control needs at least 2 questions (each gets another one's memory)")
    perm = list(range(n))
    random.Random(seed).shuffle(perm)
    partner = [0] * n
    for j, i in enumerate(perm):
        partner[i] = perm[(j + 1) % n]
    return partner


def foreign(ex: Example, evidence: list[Evidence]) -> list[Evidence]:
    """Another question's evidence as this question would see it: ids prefixed with its question id, never gold."""
    return [replace(e, id=f"{ex.id}/{e.id}", gold=False) for e in evidence]


def memory_of(method: Baseline, examples: list[Example]) -> list[int] | None:
    """Whose memory each question reads: None for its own (`memory: own`, the default), else the shuffled-memory
    control's partners (`memory: shuffled`), seeded by the run's seed."""
    mode = method.spec.get("memory", "own")
    if mode not in ("own", "shuffled"):
        raise InputError(f"method {method.label}: memory must be own or shuffled, got {mode!r}")
    return shuffled_partners(len(examples), method.config.get("seed", 0)) if mode == "shuffled" else None


def top_k(scores, k: int) -> list[int]:
    """Indices of the k best scores; ties go to the earlier item, so retrieval is deterministic."""
    return sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))[:k]


def _import_file(path: Path) -> None:
    """Import a baseline module kept outside the repository (once per process), under a name of its own path."""
    name = f"lmem_baselines_{sha256_json(str(path.resolve()))[:12]}_{path.stem}"
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


def discover() -> dict[str, type[Baseline]]:
    """Import every module in the `baselines` package and in the `LMEM_BASELINES` folders (registering their
    classes) and return the registry."""
    import baselines  # the repository's baselines/ folder, a package beside lmem

    for mod in pkgutil.iter_modules(baselines.__path__):
        importlib.import_module(f"baselines.{mod.name}")
    for folder in filter(None, os.environ.get("LMEM_BASELINES", "").split(os.pathsep)):
        if not Path(folder).is_dir():
            raise InputError(f"LMEM_BASELINES: {folder} is not a folder; set it to folders of baseline modules")
        for path in sorted(Path(folder).glob("*.py")):
            _import_file(path)
    return REGISTRY


def get(name: str) -> type[Baseline]:
    registry = discover()
    if name not in registry:
        raise InputError(f"unknown method {name!r}; known: {sorted(registry)}. Add baselines/<name>.py "
                         f"or a module in a folder named by LMEM_BASELINES (see README, 'Add a baseline in one "
                         f"file')")
    return registry[name]
