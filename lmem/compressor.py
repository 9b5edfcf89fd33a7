"""The Latent Memory compressor (docs/method.md section 2).

One frozen causal LM with three LoRA adapters (peft): `compress` turns an evidence item into a latent, `query`
encodes questions for retrieval, `decode` reconstructs evidence from its latent. (The paper's optional
`query_decode`, reconstruction of the question, is not built: nothing here trains it.) T learned `[MEM]` input vectors are appended after the item's tokens; the latent is the
last layer's hidden state at those T positions. Items are left-padded and given explicit position ids (0..n-1 for
the tokens, n..n+T-1 for `[MEM]`), so a latent does not depend on what else is in its batch.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file, save_file
from torch import nn

from lmem.generator import load_causal_lm
from lmem.io import sha256_file
from lmem.options import CompressorConfig  # noqa: F401  (defined there, light, so a profile is checked at load)
from lmem.vision import load_vision
from lmem.vlm import NativeVision, load_vlm


class Projection(nn.Module):
    """Latent -> generator embedding space: Linear -> GELU -> Linear -> LayerNorm, mid = (in + out) / 2.

    The LayerNorm's gain starts at the generator's embedding scale: a unit-variance output would sit far outside
    the generator's input distribution (SmolLM2's token embeddings have std 0.14, norm 3.2, against 24 for a
    unit-variance vector), and the gain learns too slowly to close that gap in a short run."""

    def __init__(self, d_in: int, d_out: int, out_std: float = 1.0):
        super().__init__()
        mid = (d_in + d_out) // 2
        self.net = nn.Sequential(nn.Linear(d_in, mid), nn.GELU(), nn.Linear(mid, d_out), nn.LayerNorm(d_out))
        nn.init.constant_(self.net[3].weight, out_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Compressor(nn.Module):
    def __init__(self, cfg: CompressorConfig, base_model, tokenizer, vision=None):
        super().__init__()
        self.cfg, self.tokenizer = cfg, tokenizer
        for p in base_model.parameters():
            p.requires_grad_(False)
        lora = dict(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, bias="none",
                    task_type="CAUSAL_LM")
        def targets(names: list[str]):
            if cfg.kind == "vlm":  # the language model's layers only, never the vision tower's
                return rf".*language_model.*\.({'|'.join(names)})$"
            return names

        enc = LoraConfig(target_modules=targets(list(cfg.lora_targets)), **lora)
        dec = LoraConfig(target_modules=targets(list(cfg.lora_targets) + list(cfg.decoder_extra_targets)), **lora)
        self.peft = get_peft_model(base_model, enc, adapter_name="compress")
        self.peft.add_adapter("query", enc)
        self.peft.add_adapter("decode", dec)
        for name, p in self.peft.named_parameters():
            if "lora_" in name:
                p.data = p.data.float()
        hidden = int(base_model.get_input_embeddings().weight.shape[1])
        emb = base_model.get_input_embeddings().weight
        gen = torch.Generator().manual_seed(0)
        init = emb.detach().float().mean(0, keepdim=True).repeat(cfg.num_mem_tokens, 1)
        noise = torch.randn(init.shape, generator=gen).to(init.device)
        self.mem = nn.Parameter(init + 0.02 * emb.detach().float().std() * noise)
        self.retrieval_head = nn.Sequential(nn.Linear(hidden, cfg.retrieval_dim), nn.LayerNorm(cfg.retrieval_dim))
        self.projection = Projection(hidden, cfg.generator_hidden, cfg.generator_embed_std)
        self.vision = vision  # frozen, not part of the compressor's weights (lmem.vision.Vision)
        if vision is not None:
            if vision.hidden != hidden:
                raise ValueError(f"vision module {cfg.vision_dir} makes {vision.hidden}-d tokens, but the compressor"
                                 f" {cfg.model} takes {hidden}-d inputs")
            # image regression: the latent predicts the image encoder's pooled feature
            self.image_head = nn.Linear(hidden, vision.feature_dim)
        self.register_buffer("latent_mean", torch.zeros(hidden))
        self.register_buffer("latent_std", torch.ones(hidden))
        self.to(emb.device)  # the base's device (lmem.stage.device()); heads are made on the CPU first
        self._enable_lora_grads()

    # -- adapters -------------------------------------------------------------------------------------------
    def _enable_lora_grads(self) -> None:
        # peft's set_adapter freezes inactive adapters; every adapter stays trainable here (inactive ones simply
        # take no part in the forward pass, so they get no gradient)
        for name, p in self.peft.named_parameters():
            if "lora_" in name:
                p.requires_grad_(True)

    def use(self, adapter: str) -> None:
        self.peft.set_adapter(adapter)
        self._enable_lora_grads()

    @property
    def lm(self):
        """The causal LM with the LoRA layers injected (the active adapter applies)."""
        return self.peft.get_base_model()

    @property
    def device(self) -> torch.device:
        return self.mem.device

    # -- encoding -------------------------------------------------------------------------------------------
    def tokenize(self, texts: list[str], max_tokens: int) -> list[list[int]]:
        return [self.tokenizer(t, add_special_tokens=False, truncation=True, max_length=max_tokens)["input_ids"]
                for t in texts]

    def evidence_inputs(self, evidence: list) -> tuple[list[list[int]], list[torch.Tensor | None]]:
        """(token ids, prefixes) of evidence items: a text item's text; an image's visual tokens (the prefix, from
        the vision module) then its title and caption."""
        ids = self.tokenize([e.search_text for e in evidence], self.cfg.max_evidence_tokens)
        prefixes: list[torch.Tensor | None] = [None] * len(evidence)
        images = [i for i, e in enumerate(evidence) if e.kind == "image"]
        if images:
            if self.vision is None:
                raise ValueError(f"evidence {evidence[images[0]].id} is an image, but compressor {self.cfg.model} has "
                                 "no vision module: give its config entry `vision: <name under vision>`")
            with torch.no_grad():
                tokens = self.vision.tokens([evidence[i] for i in images])
            for i, t in zip(images, tokens):
                prefixes[i] = t
        return ids, prefixes

    def _hidden_at_mem(self, token_ids: list[list[int]], adapter: str,
                       prefixes: list[torch.Tensor | None] | None = None) -> torch.Tensor:
        """(B, T, H) last-layer hidden states at the [MEM] positions, left padding + explicit position ids. A row's
        prefix (input embeddings, e.g. an image's visual tokens) goes before its tokens."""
        self.use(adapter)
        if prefixes is not None and any(p is not None for p in prefixes):
            return self._hidden_with_prefixes(token_ids, prefixes)
        T = self.cfg.num_mem_tokens
        width = max(len(t) for t in token_ids) + T
        emb_layer = self.lm.get_input_embeddings()
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(token_ids), width - T), pad, dtype=torch.long, device=self.device)
        mask = torch.zeros((len(token_ids), width), dtype=torch.long, device=self.device)
        for i, seq in enumerate(token_ids):
            if seq:
                ids[i, width - T - len(seq):] = torch.tensor(seq, device=self.device)
            mask[i, width - T - len(seq):] = 1
        embeds = emb_layer(ids)
        mem = self.mem.to(embeds.dtype).unsqueeze(0).expand(len(token_ids), -1, -1)  # (B, T, H)
        embeds = torch.cat([embeds, mem], dim=1)
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.lm.model(inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids)
        return out.last_hidden_state[:, -T:]

    def _hidden_with_prefixes(self, token_ids: list[list[int]], prefixes: list[torch.Tensor | None]) -> torch.Tensor:
        emb_layer = self.lm.get_input_embeddings()
        T = self.cfg.num_mem_tokens
        rows = []
        for seq, prefix in zip(token_ids, prefixes):
            parts = [] if prefix is None else [prefix.to(self.device, emb_layer.weight.dtype)]
            if seq:
                parts.append(emb_layer(torch.tensor(seq, device=self.device)))
            parts.append(self.mem.to(emb_layer.weight.dtype))
            rows.append(torch.cat(parts))
        width = max(r.shape[0] for r in rows)
        embeds = torch.zeros((len(rows), width, rows[0].shape[1]), dtype=rows[0].dtype, device=self.device)
        mask = torch.zeros((len(rows), width), dtype=torch.long, device=self.device)
        for i, r in enumerate(rows):
            embeds[i, width - r.shape[0]:] = r
            mask[i, width - r.shape[0]:] = 1
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.lm.model(inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids)
        return out.last_hidden_state[:, -T:]

    def compress(self, token_ids: list[list[int]], prefixes: list[torch.Tensor | None] | None = None) -> torch.Tensor:
        """Evidence -> latents (B, T, H); `prefixes` from `evidence_inputs` for image items."""
        return self._hidden_at_mem(token_ids, "compress", prefixes)

    def image_regression_loss(self, latents: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """1 - cosine between each image latent's prediction of the image encoder's pooled feature and that
        feature (latents (B, T, H), pooled (B, dim))."""
        pred = self.image_head(self.standardized(latents).mean(1))
        return (1 - nn.functional.cosine_similarity(pred, pooled.to(pred.device).float(), dim=-1)).mean()

    def embed_query(self, token_ids: list[list[int]]) -> torch.Tensor:
        """Questions -> unit retrieval embeddings (B, retrieval_dim)."""
        return self.retrieval_embedding(self._hidden_at_mem(token_ids, "query"))

    def standardized(self, latents: torch.Tensor) -> torch.Tensor:
        latents = latents.float()
        if not self.cfg.latent_standardize:
            return latents
        return (latents - self.latent_mean) / self.latent_std

    @torch.no_grad()
    def fit_latent_stats(self, token_ids: list[list[int]], batch_size: int = 32,
                         prefixes: list[torch.Tensor | None] | None = None) -> None:
        """Per-dimension mean and std of the `compress` latents of these evidence items (called once, before
        training; saved with the checkpoint)."""
        prefixes = prefixes or [None] * len(token_ids)
        lat = torch.cat([self.compress(token_ids[s:s + batch_size], prefixes[s:s + batch_size]).float().flatten(0, 1)
                         for s in range(0, len(token_ids), batch_size)])
        self.latent_mean.copy_(lat.mean(0))
        self.latent_std.copy_(lat.std(0).clamp(min=1e-3))

    def retrieval_embedding(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (B, T, H) -> unit retrieval embeddings; T > 1 is averaged."""
        return nn.functional.normalize(self.retrieval_head(self.standardized(latents)).mean(1), dim=-1)

    def project(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (B, T, H) -> generator input embeddings (B, T, generator_hidden)."""
        return self.projection(self.standardized(latents))

    # -- reconstruction ------------------------------------------------------------------------------------
    def _bos(self) -> int:
        bos = self.tokenizer.bos_token_id
        return self.tokenizer.eos_token_id if bos is None else bos

    def reconstruction_inputs(self, latents: torch.Tensor, token_ids: list[list[int]]):
        """(input embeddings, attention mask, labels) of the reconstruction loss, right padded.

        The input is [latent_1..latent_T | BOS | x_1..x_{n-1}] and the label at each position is the token that
        position predicts: BOS (position T) predicts x_1, x_j (position T + j) predicts x_{j+1}; the latent
        positions and the padding carry -100. So `logits[:, p]` is scored against `labels[:, p]`, with no
        further shift."""
        T, B = latents.shape[1], len(token_ids)
        width = max(max(len(t) for t in token_ids), 1)
        inp = torch.full((B, width), self._bos(), dtype=torch.long, device=self.device)  # BOS then x_1..x_{n-1}
        labels = torch.full((B, T + width), -100, dtype=torch.long, device=self.device)
        mask = torch.zeros((B, T + width), dtype=torch.long, device=self.device)
        for i, seq in enumerate(token_ids):
            n = len(seq)
            if n > 1:
                inp[i, 1:n] = torch.tensor(seq[:-1], device=self.device)
            if n:
                labels[i, T:T + n] = torch.tensor(seq, device=self.device)
            mask[i, :T + max(n, 1)] = 1
        tok_embeds = self.lm.get_input_embeddings()(inp)
        return torch.cat([latents.to(tok_embeds.dtype), tok_embeds], dim=1), mask, labels

    def reconstruction_loss(self, latents: torch.Tensor, token_ids: list[list[int]]) -> torch.Tensor:
        """Cross-entropy (nats per token) of the `decode` adapter reading [latent | BOS | x_1..x_{n-1}] and
        predicting x_1..x_n (docs/method.md section 3); see `reconstruction_inputs` for the alignment."""
        self.use("decode")
        embeds, mask, labels = self.reconstruction_inputs(latents, token_ids)
        logits = self.lm(inputs_embeds=embeds, attention_mask=mask).logits
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                                           ignore_index=-100)

    @torch.no_grad()
    def reconstruct(self, latents: torch.Tensor, max_tokens: int) -> list[list[int]]:
        """Greedy decoding of the `decode` adapter from latents (B, T, H): what the latents let it rebuild, up to
        `max_tokens` tokens each (no stop token: the caller compares prefixes)."""
        self.use("decode")
        emb = self.lm.get_input_embeddings()
        bos = torch.full((latents.shape[0], 1), self._bos(), dtype=torch.long, device=self.device)
        embeds = torch.cat([latents.to(emb.weight.dtype), emb(bos)], dim=1)
        out = []
        for _ in range(max_tokens):  # the prompts are short: recomputing them beats managing a cache here
            nxt = self.lm(inputs_embeds=embeds).logits[:, -1].argmax(-1)
            out.append(nxt)
            embeds = torch.cat([embeds, emb(nxt[:, None])], dim=1)
        return torch.stack(out, 1).tolist()

    # -- persistence ---------------------------------------------------------------------------------------
    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Everything training changes: LoRA, [MEM], heads, projection, and the latent statistics."""
        state = {n: p.detach().contiguous() for n, p in self.named_parameters() if p.requires_grad}
        state.update({n: b.detach().contiguous() for n, b in self.named_buffers() if n.startswith("latent_")})
        return state

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file(self.trainable_state(), str(folder / "compressor.safetensors"))
        (folder / "compressor.json").write_text(json.dumps(asdict(self.cfg), indent=2))

    def load_trainable(self, folder: str | Path) -> None:
        state = load_file(str(Path(folder) / "compressor.safetensors"))
        missing = set(self.trainable_state()) - set(state)
        if missing:
            raise ValueError(f"{folder}: checkpoint lacks {len(missing)} trainable tensors, e.g. {sorted(missing)[:3]}")
        self.load_state_dict(state, strict=False)


def build_compressor(cfg: CompressorConfig, generator_embeddings: torch.Tensor | None = None,
                     images: dict | None = None) -> Compressor:
    """Load the base model (resolved offline like every model) and wrap it as a compressor whose projection
    targets the generator with these input embeddings (vocab, hidden); with `cfg.vision_dir`, its vision module
    too (`images`: where the benchmark's images live)."""
    if generator_embeddings is not None:
        cfg.generator_hidden = int(generator_embeddings.shape[1])
        cfg.generator_embed_std = float(generator_embeddings.float().std())
    if cfg.kind not in ("causal_lm", "vlm"):
        raise ValueError(f"compressor kind must be causal_lm or vlm, got {cfg.kind!r}")
    if cfg.kind == "vlm":
        if cfg.num_layers is not None or cfg.vision_dir:
            raise ValueError("a vlm compressor reads images with its own vision tower and keeps all its layers: "
                             "drop num_layers and vision")
        _, processor, base = load_vlm(cfg.model, cfg.prefer, cfg.dtype)
        tokenizer = processor.tokenizer
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        return Compressor(cfg, base, tokenizer, NativeVision(base, processor, images))
    _, tokenizer, base = load_causal_lm(cfg.model, cfg.prefer, cfg.dtype)
    if cfg.num_layers is not None:
        layers = base.model.layers
        if not 1 <= cfg.num_layers <= len(layers):
            raise ValueError(f"compressor num_layers={cfg.num_layers}, but {cfg.model} has {len(layers)} layers")
        base.model.layers = layers[: cfg.num_layers]
        base.config.num_hidden_layers = cfg.num_layers
        if getattr(base.config, "layer_types", None):
            base.config.layer_types = base.config.layer_types[: cfg.num_layers]
    vision = None
    if cfg.vision_dir:
        vision = load_vision(cfg.vision_dir, images)
    return Compressor(cfg, base, tokenizer, vision)


def checkpoint_tag(compressor: Compressor, folder: str | Path, stage: str) -> str:
    """`base+stage@sha256-prefix` of a checkpoint folder's weights, for the results' `models` column."""
    return f"{compressor.cfg.model}+{stage}@{sha256_file(Path(folder) / 'compressor.safetensors')[:12]}"


def load_compressor(folder: str | Path, images: dict | None = None) -> Compressor:
    """A trained compressor from a checkpoint folder (compressor.json + compressor.safetensors)."""
    cfg = CompressorConfig.from_dict(json.loads((Path(folder) / "compressor.json").read_text()))
    comp = build_compressor(cfg, images=images)
    comp.load_trainable(folder)
    return comp.eval()
