"""Llama 2's combined reward for RLHF (§3.2.3): one scalar per response from two reward models.

    R_c(g|p) = R_s(g|p)   if IS_SAFETY(p) or R_s(g|p) < 0.15
               R_h(g|p)   otherwise
    R̃_c(g|p) = WHITEN(LOGIT(R_c(g|p)))

R_s and R_h are the RMs' raw scores mapped to probabilities by a sigmoid. A safety-tagged prompt is judged
by the safety RM alone; any other response is judged by the helpfulness RM unless the safety RM finds it
likely unsafe (the 0.15 threshold gave precision 0.89 and recall 0.55 on unsafe responses in the paper).
LOGIT undoes the sigmoid, so R̃_c is the chosen RM's raw score whitened over the batch.
"""

from __future__ import annotations

import torch

from ..train.losses import masked_whiten

SAFETY_THRESHOLD = 0.15


def logit(p: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """log(p / (1 − p)), with p clamped to [eps, 1 − eps] so saturated probabilities stay finite."""
    p = p.float().clamp(eps, 1 - eps)
    return torch.log(p) - torch.log1p(-p)


def whiten(x: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """(x − mean) / std over the whole batch (population std); ``shift_mean=False`` keeps the mean."""
    return masked_whiten(x.float(), torch.ones_like(x, dtype=torch.float32), shift_mean=shift_mean, eps=eps)


def combined_reward(r_help: torch.Tensor, r_safe: torch.Tensor, is_safety: torch.Tensor,
                    threshold: float = SAFETY_THRESHOLD) -> torch.Tensor:
    """R_c per response: r_help, r_safe [N] are sigmoid probabilities, is_safety [N] bool (prompt tag) → [N]."""
    if not r_help.shape == r_safe.shape == is_safety.shape:
        raise ValueError(f"combined_reward: shapes differ: r_help {tuple(r_help.shape)}, r_safe {tuple(r_safe.shape)}, "
                         f"is_safety {tuple(is_safety.shape)}")
    use_safety = is_safety.bool() | (r_safe < threshold)
    return torch.where(use_safety, r_safe, r_help)


def shaped_reward(help_scores: torch.Tensor, safety_scores: torch.Tensor, is_safety: torch.Tensor,
                  threshold: float = SAFETY_THRESHOLD, whiten_batch: bool = True, shift_mean: bool = True) -> torch.Tensor:
    """R̃_c = WHITEN(LOGIT(R_c)) from the two RMs' raw scores [N] (as `reward_model.score` returns them).

    ``whiten_batch=False`` returns LOGIT(R_c) (for a batch of one, or to whiten across several batches).
    """
    r_c = combined_reward(torch.sigmoid(help_scores.float()), torch.sigmoid(safety_scores.float()), is_safety, threshold)
    shaped = logit(r_c)
    return whiten(shaped, shift_mean=shift_mean) if whiten_batch else shaped
