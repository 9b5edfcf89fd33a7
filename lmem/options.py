"""Every trainer's options (the compressor's, xRAG's projector's, the vision module's), the compressor's own
(`CompressorConfig`) and its latent index's (`IndexConfig`): dataclasses with the defaults, built from a profile's
entries. Light (no torch), so `lmem.config` checks every such section when a profile is loaded, before any model
loads: an unknown key or a bad value is an error naming the entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
    # Not in the paper (0 there: the student reads its gold latents in the teacher's order, plus distill_negatives
    # distractors at random places): the student reads a memory of `distill_memory` latents as inference gives it,
    # its gold latents and the step's highest-scoring other latents (its hard negatives and the batch's other
    # questions' evidence, already compressed), all in the order of the query's retrieval score (detached)
    distill_memory: int = 0
    # Not in the paper (None there: every question): the question types (`metadata.type`, e.g. synth's single) whose
    # questions the distillation and the answer cross-entropy train on; the others train retrieval (InfoNCE) and
    # reconstruction only. So the query encoder learns two-hop retrieval while the generator learns to read from the
    # questions a small reader can learn to read (README, "Latent Memory")
    distill_types: list[str] | None = None
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
        if self.distill_memory < 0:
            raise ValueError(f"distill_memory must be 0 (off) or a number of latents, got {self.distill_memory}")
        if self.distill_types is not None and (not isinstance(self.distill_types, list) or not self.distill_types
                                               or not all(isinstance(x, str) and x for x in self.distill_types)):
            raise ValueError(f"distill_types must be a non-empty list of question types (e.g. [single]) or null, "
                             f"got {self.distill_types!r}")
        if self.distill_memory and self.distill_negatives:
            raise ValueError("distill_memory and distill_negatives are two ways to add distractor latents to the "
                             "student's prompt: set one of them to 0")


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


@dataclass
class CompressorConfig:
    model: str = "HuggingFaceTB/SmolLM2-135M-Instruct"
    prefer: str = "package"
    dtype: str = "float32"  # of the frozen base; LoRA, [MEM], heads and projection train in float32
    num_layers: int | None = None  # keep only the base's first layers (a smaller compressor); None: all
    num_mem_tokens: int = 1
    retrieval_dim: int = 512
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    decoder_extra_targets: list[str] = field(default_factory=lambda: ["gate_proj", "up_proj"])
    max_evidence_tokens: int = 64
    max_query_tokens: int = 64
    generator_hidden: int = 576  # size of the generator's input embeddings (set from the generator)
    generator_embed_std: float = 1.0  # scale of the generator's token embeddings (set from the generator)
    # Standardise each latent dimension (mean/std measured once, over training evidence, before training) before
    # the retrieval head and the projection. A base LM's last hidden states carry a few huge shared dimensions
    # (SmolLM2: two of norm ~22 in a vector of norm ~41), so raw latents of different sentences have cosine ~0.99
    # and the heads start out unable to tell them apart. false: the paper's heads on raw hidden states.
    latent_standardize: bool = True
    # Image evidence (issue 5): a composed VLM's vision module (lmem.vision) whose visual tokens precede the image's
    # title and caption in the compressor's input; set by the DAG from the compressor entry's `vision` name
    vision_dir: str | None = None
    # causal_lm: a text LM base; vlm: an image-text model (LLaVA-1.5, Gemma 3) whose own vision tower reads image
    # evidence, with LoRA on its language model only (the paper's multimodal compressors)
    kind: str = "causal_lm"

    # the entry's keys that are the trainer's and the DAG's, not the compressor's
    NOT_MINE = frozenset({"train", "train_data", "val_data", "index", "vision", "images", "init_from"})

    @classmethod
    def from_dict(cls, d: dict) -> "CompressorConfig":
        """From a config entry; the trainer's and the DAG's keys (train, train_data, val_data, index, vision,
        init_from) are skipped."""
        return options(cls, {k: v for k, v in d.items() if k not in cls.NOT_MINE}, "compressor")

    def __post_init__(self) -> None:
        check_choice("prefer", self.prefer, ("package", "hub"))
        check_choice("dtype", self.dtype, ("float32", "bfloat16", "float16"))
        check_choice("kind", self.kind, ("causal_lm", "vlm"))
        check_positive_ints(self, ("num_mem_tokens", "retrieval_dim", "lora_r", "lora_alpha", "max_evidence_tokens",
                                   "max_query_tokens"))
        if self.num_layers is not None and (not isinstance(self.num_layers, int) or self.num_layers < 1):
            raise ValueError(f"num_layers must be a positive integer or null (all layers), got {self.num_layers!r}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout!r}")


@dataclass
class IndexConfig:
    """A compressor entry's `index` section: how build_latent_index encodes and stores a benchmark's latents."""

    batch_size: int = 32  # evidence items encoded per forward pass
    shard_size: int = 4096  # latents per safetensors shard (an interrupted build resumes shard by shard)
    faiss: str = "flat"  # flat (exact) | ivf | ivfpq
    nlist: int = 256  # IVF lists (ivf, ivfpq; capped by the item count)
    nprobe: int = 16  # IVF lists searched per query
    storages: list[str] = field(default_factory=lambda: ["fp16"])  # the latent forms stored: fp16, int8, pq
    pq_m: int = 64  # PQ sub-quantizers of the `pq` latent storage
    pca: int = 0  # ivfpq: rotate the retrieval embeddings onto this many principal directions first (0: no rotation)
    refine: int = 0  # ivfpq: bytes of a second PQ code of what the first leaves, re-ranking its best (IVFPQR); 0: none

    @classmethod
    def from_dict(cls, d: dict) -> "IndexConfig":
        return options(cls, {k: v for k, v in d.items() if k != "images"}, "index")  # images: the benchmark's

    def __post_init__(self) -> None:
        check_choice("faiss", self.faiss, ("flat", "ivf", "ivfpq"))
        if not self.storages or not set(self.storages) <= {"fp16", "int8", "pq"}:
            raise ValueError(f"storages must be a non-empty list of fp16, int8, pq; got {self.storages!r}")
        check_positive_ints(self, ("batch_size", "shard_size", "nlist", "nprobe", "pq_m"))
        if not isinstance(self.pca, int) or self.pca < 0 or self.pca % 4:
            raise ValueError(f"pca must be 0 (no rotation) or a multiple of 4 (ivfpq codes 4 dimensions each); "
                             f"got {self.pca!r}")
        if not isinstance(self.refine, int) or self.refine < 0:
            raise ValueError(f"refine must be 0 (no second code) or a positive number of bytes; got {self.refine!r}")

    def check_dims(self, d: int) -> None:
        """The ivfpq options against the retrieval embeddings' d dimensions (the compressor's retrieval_dim): the
        PCA rotation keeps at most d, and the second code's bytes divide the dimensions the codes cover."""
        if self.faiss != "ivfpq":
            return
        if self.pca > d:
            raise ValueError(f"pca {self.pca} is more than the retrieval embeddings' {d} dimensions (retrieval_dim)")
        coded = self.pca or d
        if self.refine and coded % self.refine:
            raise ValueError(f"refine {self.refine} must divide the {coded} dimensions the codes cover (each of its "
                             f"bytes codes {coded} / refine of them): pick a divisor of {coded}")


def check_choice(name: str, value, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))}; got {value!r}")


def check_positive_ints(obj, names: tuple[str, ...]) -> None:
    for name in names:
        if not isinstance(getattr(obj, name), int) or getattr(obj, name) < 1:
            raise ValueError(f"{name} must be a positive integer, got {getattr(obj, name)!r}")
