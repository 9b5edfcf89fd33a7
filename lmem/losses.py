"""The contrastive and distillation losses of Latent Memory (METHOD.md section 3); the reconstruction loss is
`Compressor.reconstruction_loss`, since it runs the compressor's own `decode` adapter."""

from __future__ import annotations

import torch


def multi_positive_infonce(queries: torch.Tensor, candidates: torch.Tensor, positive: torch.Tensor,
                           allowed: torch.Tensor, temperature: float) -> torch.Tensor:
    """Multi-positive InfoNCE, averaged over (query, positive) pairs.

    queries (Q, D) and candidates (C, D) are unit vectors; positive[q, c] marks c as a positive of q; allowed[q, c]
    marks the candidates q is contrasted against (every positive in the batch plus q's own hard negatives).
    Each pair's loss is -log softmax over q's allowed candidates at that positive.
    """
    positive, allowed = positive.to(queries.device), allowed.to(queries.device)
    logits = queries @ candidates.T / temperature
    logits = logits.masked_fill(~allowed, float("-inf"))
    log_probs = logits.log_softmax(dim=-1)
    pairs = positive & allowed
    return -(log_probs[pairs]).mean()


def distillation_kl(student_logits: torch.Tensor, teacher_indices: torch.Tensor, teacher_logprobs: torch.Tensor,
                    mask: torch.Tensor) -> torch.Tensor:
    """KL(student || teacher) over the teacher's top-k tokens at each teacher-forced answer position.

    student_logits (B, N, V); teacher_indices / teacher_logprobs (B, N, K) are the teacher's top-k support (with
    K = V this is the exact KL); both distributions are renormalised over that support. mask (B, N) marks real
    answer positions.
    """
    s = student_logits.float().log_softmax(-1).gather(-1, teacher_indices)
    s = s - s.logsumexp(-1, keepdim=True)
    t = teacher_logprobs.float() - teacher_logprobs.float().logsumexp(-1, keepdim=True)
    kl = (s.exp() * (s - t)).sum(-1)
    return (kl * mask).sum() / mask.sum().clamp(min=1)



def answer_cross_entropy(logits: torch.Tensor, targets: list[list[int]]) -> torch.Tensor:
    """Cross-entropy of right-aligned target tokens: logits (B, n, V) over the last n positions, target i filling
    the last len(targets[i]) of them (as `Generator.forced_logits` lays them out)."""
    n = logits.shape[1]
    labels = torch.full(logits.shape[:2], -100, dtype=torch.long, device=logits.device)
    for r, t in enumerate(targets):
        labels[r, n - len(t):] = torch.tensor(t, device=logits.device)
    return torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                             ignore_index=-100)
