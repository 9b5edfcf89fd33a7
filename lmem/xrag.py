"""Stage `train-xrag`: the xRAG baseline's projector (Cheng et al., 2024, "xRAG: Extreme Context Compression for
Retrieval-augmented Generation with One Token"), trained here on the same data as Latent Memory.

A frozen dense retriever embeds each evidence item; a projector (Linear -> GELU -> Linear, then a LayerNorm at
the generator's embedding scale, as for Latent Memory) maps the embedding to ONE input embedding of the frozen
generator. Only the projector trains, in xRAG's two stages:
  1. paraphrase pretraining: from the token alone the generator must reproduce the evidence text
     (cross-entropy on the text; the instruction is `paraphrase_instruction` in the Latent Memory prompt);
  2. context-aware instruction tuning: one token per gold evidence item, the generator answers the question;
     loss = w_nll * cross-entropy on the gold answer + w_kl * KL(student || teacher) on the same positions,
     where the teacher is the frozen generator reading the evidence as text (top-k, computed once, cached).
Steps are pure functions of (seed, step), checkpoints hold the optimizer, so a killed run resumes exactly.

Usage: python -m lmem.xrag --spec JSON --out DIR   (DIR/projector.safetensors, projector.json, train_log.csv)
"""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path

import torch
from tqdm import tqdm

from lmem.compressor import Projection
from lmem.io import append_csv, sha256_json
from lmem.losses import answer_cross_entropy, distillation_kl
from lmem.options import XragTrainConfig
from lmem.prompts import encode_latent, encode_with_evidence
from lmem.stage import device
from lmem.train import (cached_teacher, discard_stale_run, frozen_generator, load_resume_state, load_split,
                        optimizer_step, publish, run_key, save_checkpoint, trainer_cli, training_items)

log = logging.getLogger("lmem.xrag")


class XragProjector(torch.nn.Module):
    """Retriever embedding (d_in) -> one generator input embedding (d_out)."""

    def __init__(self, d_in: int, d_out: int, out_std: float, retriever: str):
        super().__init__()
        self.meta = {"d_in": d_in, "d_out": d_out, "out_std": out_std, "retriever": retriever}
        self.projection = Projection(d_in, d_out, out_std)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.projection(embeddings.float())

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(folder / "projector.safetensors"))
        (folder / "projector.json").write_text(json.dumps(self.meta, indent=2))


def load_projector(folder: str | Path) -> XragProjector:
    from safetensors.torch import load_file

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
        import re

        from safetensors import safe_open

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


class XragTrainer:
    def __init__(self, spec: dict, out_dir: str | Path, train_examples):
        from lmem.encoders import DenseEncoder

        self.spec, self.out = spec, Path(out_dir)
        self.cfg = XragTrainConfig.from_dict(dict(spec.get("train", {}), seed=spec.get("seed", 0)))
        self.prompt_cfg = spec["prompt"]
        self.out.mkdir(parents=True, exist_ok=True)
        self.generator = frozen_generator(spec["generator"])
        self.items = training_items(train_examples, self.cfg.max_positives)
        if not self.items:
            raise SystemExit("no training examples with gold evidence and answers; check the projector's train_data")
        self.key = run_key(spec, train_examples)
        retriever = spec["retriever"]
        encoder = DenseEncoder(retriever["model"], retriever)
        rng = random.Random(self.cfg.seed)
        texts: dict[str, None] = {}
        for it in self.items:
            for e in it.positives + rng.sample(it.negatives, min(self.cfg.paraphrase_negatives, len(it.negatives))):
                texts.setdefault(e.text)
        self.texts = list(texts)
        self.embedding = dict(zip(self.texts, encoder.encode(self.texts)))  # frozen: computed once
        emb = self.generator.model.get_input_embeddings().weight
        torch.manual_seed(self.cfg.seed)
        self.projector = XragProjector(encoder.model.config.hidden_size, emb.shape[1], float(emb.float().std()),
                                       retriever["model"]).to(emb.device)
        del encoder
        total = self.cfg.paraphrase_steps + self.cfg.steps
        self.optimizer = torch.optim.AdamW(self.projector.parameters(), lr=self.cfg.lr,
                                           weight_decay=self.cfg.weight_decay)
        from transformers import get_cosine_schedule_with_warmup

        self.scheduler = get_cosine_schedule_with_warmup(self.optimizer, self.cfg.warmup_steps, total)
        self.answers = [self.generator.answer_ids(it.example.answers[0], self.cfg.max_answer_tokens)
                        for it in self.items]
        self.teacher = self._teacher_cache()

    # -- the text teacher, teacher-forced on the gold answer -------------------------------------------------
    @torch.no_grad()
    def _teacher_cache(self) -> dict:
        key = sha256_json({"items": [(i.example.id, [e.id for e in i.positives]) for i in self.items],
                           "generator": self.generator.resolved.sha256, "prompt": self.prompt_cfg,
                           "answers": self.answers, "topk": self.cfg.distill_topk})

        def compute() -> dict:
            gen = self.generator
            prompts = []
            for it in self.items:
                pos = {e.id: i for i, e in enumerate(it.example.pool)}
                prompts.append(encode_with_evidence(gen.tokenizer, it.example.question, it.positives,
                                                    self.prompt_cfg, gen.max_input_tokens, pos))
            indices, logprobs = gen.forced_topk(prompts, self.answers, self.cfg.distill_topk,
                                                self.cfg.max_answer_tokens)
            return {"indices": indices, "logprobs": logprobs}

        return cached_teacher(self.out / "teacher.pt", key, compute)

    # -- one step --------------------------------------------------------------------------------------------
    def _vectors(self, texts: list[str]) -> torch.Tensor:
        emb = torch.stack([self.embedding[t] for t in texts]).to(self.generator.model.device)
        return self.projector(emb)

    def paraphrase_loss(self, rng: random.Random) -> dict[str, torch.Tensor]:
        gen, c = self.generator, self.cfg
        texts = [self.texts[rng.randrange(len(self.texts))] for _ in range(c.batch_size)]
        prompts = [encode_latent(gen.tokenizer, c.paraphrase_instruction, 1, self.prompt_cfg)] * len(texts)
        targets = [gen.answer_ids(t, c.max_paraphrase_tokens) for t in texts]
        vectors = self._vectors(texts)
        logits, _ = gen.forced_logits(prompts, [v[None] for v in vectors], targets, max(map(len, targets)))
        return {"paraphrase": answer_cross_entropy(logits, targets)}

    def instruction_loss(self, rng: random.Random) -> dict[str, torch.Tensor]:
        gen, c = self.generator, self.cfg
        idx = [rng.randrange(len(self.items)) for _ in range(c.batch_size)]
        prompts, vectors, targets = [], [], []
        for i in idx:
            it = self.items[i]
            pos = {e.id: p for p, e in enumerate(it.example.pool)}
            chosen = sorted(it.positives, key=lambda e: pos[e.id])
            prompts.append(encode_latent(gen.tokenizer, it.example.question, len(chosen), self.prompt_cfg))
            vectors.append(self._vectors([e.text for e in chosen]))
            targets.append(self.answers[i])
        N = c.max_answer_tokens
        logits, mask = gen.forced_logits(prompts, vectors, targets, N)
        out = {"nll": answer_cross_entropy(logits, targets)}
        if c.w_kl:
            ti = self.teacher["indices"][idx].long()
            tl = self.teacher["logprobs"][idx].float()
            # the cache holds answer positions first; forced_logits puts them last: shift each row
            ti2, tl2 = torch.zeros_like(ti), torch.full_like(tl, -1e4)
            for r, t in enumerate(targets):
                ti2[r, N - len(t):], tl2[r, N - len(t):] = ti[r, :len(t)], tl[r, :len(t)]
            out["kl"] = distillation_kl(logits, ti2.to(logits.device), tl2.to(logits.device), mask)
        return out

    # -- checkpoints and the loop ----------------------------------------------------------------------------
    def _save(self, name: str, state: dict | None) -> None:
        save_checkpoint(self.out, name, self.projector.save, self.optimizer, self.scheduler, state)

    def _resume(self) -> dict:
        from safetensors.torch import load_file

        last = self.out / "last"
        state = load_resume_state(last, self.optimizer, self.scheduler)
        if state is None:
            return {"step": 0, "key": self.key}
        self.projector.load_state_dict(load_file(str(last / "projector.safetensors")))
        return state

    def train(self, stop_after: int | None = None) -> dict:
        c = self.cfg
        total = c.paraphrase_steps + c.steps
        discard_stale_run(self.out, self.key, total, ("last", "final", "train_log.csv", "projector.safetensors",
                                                      "projector.json"))
        state = self._resume()
        self.projector.train()
        for step in tqdm(range(state["step"], total), desc="train xRAG", initial=state["step"], total=total,
                         mininterval=5):
            start = time.time()
            rng = random.Random(f"{c.seed}-{step}")
            stage = "paraphrase" if step < c.paraphrase_steps else "instruction"
            parts = self.paraphrase_loss(rng) if stage == "paraphrase" else self.instruction_loss(rng)
            weights = {"paraphrase": 1.0, "nll": c.w_nll, "kl": c.w_kl}
            loss = sum(weights[k] * v for k, v in parts.items())
            loss.backward()
            optimizer_step(self.projector.parameters(), self.optimizer, self.scheduler, c.max_grad_norm)
            done = step + 1
            append_csv(self.out / "train_log.csv", {
                "step": done, "stage": stage, **{k: round(parts[k].item(), 5) if k in parts else ""
                                                 for k in ("paraphrase", "nll", "kl")},
                "loss": round(loss.item(), 5), "lr": self.scheduler.get_last_lr()[0],
                "seconds": round(time.time() - start, 3)})
            state["step"] = done
            if done % c.save_every == 0 or done == total or (stop_after is not None and done >= stop_after):
                self._save("last", dict(state))
            if stop_after is not None and done >= stop_after:
                return state
        self._save("final", None)
        publish(self.out, "final", ("projector.safetensors", "projector.json"))  # the final projector at the top
        return state


def main(argv: list[str] | None = None) -> None:
    trainer_cli(__doc__, "train, train_data, generator, retriever, prompt, seed", argv,
                lambda spec, out: XragTrainer(spec, out, load_split(spec["train_data"], "train")), with_config=True)


if __name__ == "__main__":
    main()
