"""Every trainer's options (the compressor's, xRAG's projector's, the vision module's): dataclasses with the
defaults, built from a profile's `train` sections. Light (no torch), so `lmem.config` checks every `train` section
when a profile is loaded, before any model loads: an unknown key or a bad value is an error naming the entry.
"""

from __future__ import annotations

from dataclasses import dataclass


def options(cls, d: dict, what: str):
    """A training-options dataclass from a config dict; an unknown key is an error that lists the known ones."""
    unknown = set(d) - set(cls.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown {what} options {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
    return cls(**d)


@dataclass
class TrainConfig:
    steps: int = 200
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 1e-4
    warmup_steps: int = 10
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_positives: int = 3
    hard_negatives: int = 4
    w_recon: float = 0.5
    w_contrast: float = 0.2
    w_distill: float = 1.0
    temperature: float = 0.07
    distill_tokens: int = 4
    distill_topk: int = 256
    distill_negatives: int = 0
    # Not in the paper (0 there): the first `reading_warmup` steps distil from the gold latents alone, without the
    # distill_negatives distractors, so the generator first learns to read one latent, then to pick among several
    # (README, "Latent Memory": from scratch among five it learned nothing on CPU; after a warm-up it does)
    reading_warmup: int = 0
    # teacher_answer: teacher-forced on the teacher's own greedy answer (the paper); gold_answer: on the reference
    # answer, so every distilled position is an answer token (for small generators that restate the question first)
    distill_target: str = "teacher_answer"
    # Not in the paper (0 there): cross-entropy of the student on the reference answer, on the same teacher-forced
    # positions as the distillation (needs distill_target: gold_answer), as xRAG's instruction tuning adds to its KL
    w_answer: float = 0.0
    # Image evidence (issue 5): 1 - cosine between a linear map of each image latent and the image encoder's pooled
    # feature (the regression to the vision tower's embedding); needs a compressor with a vision module
    w_image: float = 0.0
    recon_negatives: bool = False
    # the student's prompt layout (prompt.latent_layout): a compressor meant for the compact layout trains on it
    latent_layout: str | None = None
    eval_every: int = 50
    save_every: int = 25
    val_questions: int = 40
    val_k: int = 5
    latent_stats_items: int = 512  # evidence items the latent standardisation's mean and std are measured on
    autocast: str = "auto"
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return options(cls, d, "training")

    def __post_init__(self) -> None:
        if self.distill_target not in ("teacher_answer", "gold_answer"):
            raise ValueError(f"distill_target must be teacher_answer or gold_answer, got {self.distill_target!r}")
        if self.w_answer and self.distill_target != "gold_answer":
            raise ValueError("w_answer (the answer cross-entropy) needs distill_target: gold_answer")
        if self.latent_layout not in (None, "paper", "compact"):
            raise ValueError(f"latent_layout must be paper or compact, got {self.latent_layout!r}")
        if self.autocast not in ("auto", "bf16", "off"):
            raise ValueError(f"autocast must be auto, bf16 or off, got {self.autocast!r}")
        if not 0 <= self.reading_warmup <= self.steps:
            raise ValueError(f"reading_warmup must be between 0 and steps ({self.steps}), got {self.reading_warmup}")


@dataclass
class XragTrainConfig:
    paraphrase_steps: int = 100  # stage 1
    steps: int = 100  # stage 2 (instruction tuning)
    batch_size: int = 8
    lr: float = 1e-3
    warmup_steps: int = 10
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    w_nll: float = 1.0
    w_kl: float = 1.0
    distill_topk: int = 64
    max_positives: int = 3
    max_answer_tokens: int = 16
    max_paraphrase_tokens: int = 48
    paraphrase_negatives: int = 2  # pool sentences besides the gold ones that stage 1 paraphrases, per question
    paraphrase_instruction: str = "Repeat the context word for word."
    save_every: int = 25
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict) -> "XragTrainConfig":
        return options(cls, d, "xRAG training")


@dataclass
class VisionTrainConfig:
    steps: int = 300
    batch_size: int = 16
    lr: float = 1e-3
    warmup_steps: int = 10
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    distractors: int = 2  # other pool images shown beside the gold one(s), so the model learns to pick by title
    max_answer_tokens: int = 8
    save_every: int = 50
    val_questions: int = 50
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict) -> "VisionTrainConfig":
        return options(cls, d, "vision training")
