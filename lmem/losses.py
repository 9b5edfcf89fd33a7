"""The contrastive and distillation losses of Latent Memory (docs/method.md section 3); the reconstruction loss is
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
    """Forward KL(teacher || student) at each teacher-forced answer position, averaged over the masked positions.

    This is what the reference code computes (`kl_div(student_log_probs, teacher_probs)`): the student's
    log-softmax over the whole vocabulary, weighted by the teacher's probabilities. The teacher is stored as its
    top-k tokens: teacher_indices / teacher_logprobs (B, N, K), log-probabilities over the full vocabulary (so
    they sum to at most 1), with -1e4 where there is no entry. What the top-k leaves out is one tail bucket on
    both sides: the teacher's remaining mass 1 - sum_k p_k against the student's mass outside the same k tokens.
    So the value is the exact KL between the two distributions coarsened to (k tokens + tail), which is zero
    only when they agree on those k tokens and the tail, and with K = V it is the exact full-vocabulary KL.
    student_logits (B, N, V); mask (B, N) marks real answer positions.
    """
    s_all = student_logits.float().log_softmax(-1)
    s = s_all.gather(-1, teacher_indices.long())  # (B, N, K) student log-probs at the teacher's tokens
    t = teacher_logprobs.float().clamp(min=-1e4)
    p = t.exp()
    head = (p * (t - s)).sum(-1)
    p_tail = (1 - p.sum(-1)).clamp(min=0)
    # log of the student's mass outside the k tokens; -inf (and no term) when the k tokens cover the vocabulary
    s_tail = torch.log1p(-s.logsumexp(-1).exp().clamp(max=1 - 1e-7))
    tail = torch.xlogy(p_tail, p_tail) - p_tail * s_tail
    kl = head + torch.where(p_tail > 0, tail, torch.zeros_like(tail))
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
