"""The typed records used everywhere: one QA example with its evidence pool, and one prediction."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Evidence:
    """One evidence item: a sentence, a text fact or an image (with its caption/title)."""

    id: str
    text: str
    kind: str = "text"  # "text" or "image"
    title: str = ""
    gold: bool = False
    image: str | None = None  # a reference to the image bytes (e.g. "imgs.tsv:<image_id>")

    @property
    def search_text(self) -> str:
        """What text retrievers see: the text of a text item; title and caption of an image (caption retrieval)."""
        return " ".join(x for x in (self.title, self.text) if x) if self.kind == "image" else self.text


@dataclass
class Example:
    """One question, its reference answers and its candidate evidence pool (in document order)."""

    id: str
    benchmark: str
    question: str
    answers: list[str]
    pool: list[Evidence] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def gold_ids(self) -> list[str]:
        return [e.id for e in self.pool if e.gold]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Example":
        pool = [Evidence(**e) for e in d.get("pool", [])]
        return cls(
            id=d["id"],
            benchmark=d["benchmark"],
            question=d["question"],
            answers=list(d["answers"]),
            pool=pool,
            metadata=dict(d.get("metadata", {})),
        )


@dataclass
class Prediction:
    """One method's answer to one example, with the generator-token accounting of its prompt."""

    example_id: str
    benchmark: str
    method: str
    k: str  # "all" for methods without a top-k
    prediction: str
    answers: list[str]
    retrieved_ids: list[str]
    gold_ids: list[str]
    tokens_full: int
    tokens_no_system: int
    tokens_context: int
    n_dropped: int = 0  # evidence items dropped because the prompt was too long
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Prediction":
        return cls(**d)


@dataclass
class ResultRow:
    """One line of the results table: a method on a benchmark at one k, with its provenance."""

    benchmark: str
    method: str
    k: str
    generator: str
    n: int
    em: float
    f1: float
    acc: float
    recall_at_k: float | None
    precision_at_k: float | None
    tokens_full: float
    tokens_no_system: float
    tokens_context: float
    f1_ci_low: float
    f1_ci_high: float
    acc_ci_low: float
    acc_ci_high: float
    webqa_acc: float | None
    n_truncated: int  # questions whose prompt dropped evidence to fit max_input_tokens
    n_dropped_items: int  # evidence items dropped in all
    n_skipped_records: int  # malformed source records skipped (on_bad_record: skip)
    n_truncated_items: int  # evidence items cut to the benchmark's max_item_chars when loaded
    n_control_chars: int  # control characters removed from the loaded data
    bytes_per_item: float  # storage per evidence item as the method keeps it (raw UTF-8 text for text methods)
    seconds: float
    seed: int
    config_hash: str
    git_commit: str
    generator_sha256: str
    data_sha256: str
    models: str = ""  # other models/checkpoints the method used: "name=id@sha256;..." (retriever, compressor...)
    metric: str = ""  # the official answer metric the row is scored by (lmem.metrics.qa.F1_RULES)
    retrieval: str = ""  # pool | global for methods that retrieve top-k (lmem/corpus.py), else empty
    latent_layout: str = ""  # paper | compact for methods whose prompt holds latents (Latent Memory, xRAG)
    work: str = ""  # the trained-work folders the run read, relative to work_dir (lmem/work.py); "" for none

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
