"""The xRAG baseline's projector at run time (Cheng et al., 2024, "xRAG: Extreme Context Compression for
Retrieval-augmented Generation with One Token"): a frozen dense retriever's embedding of an evidence item -> ONE
input embedding of the frozen generator (Linear -> GELU -> Linear, then a LayerNorm at the generator's embedding
scale, as for Latent Memory), and the released Hannibal046/xrag-7b projector. It is trained by `lmem.train_xrag`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from lmem.compressor import Projection
from lmem.stage import device


class XragProjector(torch.nn.Module):
    """Retriever embedding (d_in) -> one generator input embedding (d_out)."""

    def __init__(self, d_in: int, d_out: int, out_std: float, retriever: str):
        super().__init__()
        self.meta = {"d_in": d_in, "d_out": d_out, "out_std": out_std, "retriever": retriever}
        self.projection = Projection(d_in, d_out, out_std)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.projection(embeddings.float())

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(folder / "projector.safetensors"))
        (folder / "projector.json").write_text(json.dumps(self.meta, indent=2))


def load_projector(folder: str | Path) -> XragProjector:
    folder = Path(folder)
    if not (folder / "projector.json").exists():
        raise FileNotFoundError(f"{folder}: no trained xRAG projector (projector.json missing); run `lmem train-xrag`")
    meta = json.loads((folder / "projector.json").read_text())
    proj = XragProjector(meta["d_in"], meta["d_out"], meta["out_std"], meta["retriever"])
    proj.load_state_dict(load_file(str(folder / "projector.safetensors")))
    return proj.to(device()).eval()


class ReleasedProjector(torch.nn.Module):
    """The projector inside a released xRAG checkpoint (`Hannibal046/xrag-7b`: Mistral-7B-Instruct plus
    `projector.projector.*` weights, config `projector_type: mlp2x_gelu`, `retriever_hidden_size: 4096`): Linear,
    then (GELU, Linear) x (depth - 1), from the raw SFR-Embedding-Mistral vector to one generator embedding. Read
    from the checkpoint's safetensors with the generator's own weights left to transformers."""

    def __init__(self, folder: str | Path, dtype: torch.dtype = torch.float32):
        super().__init__()
        folder = Path(folder)
        cfg = json.loads((folder / "config.json").read_text())
        kind, d_in, hidden = cfg.get("projector_type"), cfg.get("retriever_hidden_size"), cfg.get("hidden_size")
        match = re.fullmatch(r"mlp(\d+)x_gelu", kind or "")
        if not match or not d_in:
            raise ValueError(f"{folder}: not a released xRAG checkpoint (config.json needs projector_type "
                             f"mlp<N>x_gelu and retriever_hidden_size; got {kind!r}, {d_in!r})")
        layers: list[torch.nn.Module] = [torch.nn.Linear(d_in, hidden)]
        for _ in range(int(match.group(1)) - 1):
            layers += [torch.nn.GELU(), torch.nn.Linear(hidden, hidden)]
        self.projector = torch.nn.Sequential(*layers)
        self.meta = {"d_in": d_in, "d_out": hidden, "projector_type": kind}
        state = {}
        for f in sorted(folder.glob("*.safetensors")):
            with safe_open(str(f), framework="pt") as st:
                state.update({k[len("projector."):]: st.get_tensor(k) for k in st.keys() if k.startswith("projector.")})
        if not state:
            raise ValueError(f"{folder}: no projector.* weights in its safetensors; is it Hannibal046/xrag-7b?")
        self.load_state_dict(state)
        self.to(device(), dtype).eval()

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.projector(embeddings.to(self.projector[0].weight.dtype))
