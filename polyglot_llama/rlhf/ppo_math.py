"""PPO maths as pure functions: KL-penalised rewards, GAE, clipped policy and value losses, whitening.

Shapes: B rollouts, T response positions (right-padded), ``mask`` [B, T] is 1.0 on response tokens and
0.0 on padding. Response masks are contiguous from position 0 (a response is tokens 0..len-1).
"""

from __future__ import annotations

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over positions where ``mask`` is 1 (a scalar); 0 for an empty mask."""
    return (x * mask).sum() / mask.sum().clamp_min(1.0)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / std over the masked positions (population variance); ``shift_mean=False`` keeps the mean.

    PPO whitens advantages per batch; keeping the mean is how a whitened scalar reward keeps its sign.
    """
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    whitened = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask


def per_token_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token KL estimate log π_θ(y_t) − log π_0(y_t); its sum over a sampled response is an unbiased
    estimate of KL(π_θ ‖ π_0) for that prompt (the k1 estimator)."""
    return logprobs - ref_logprobs


def kl_penalised_rewards(scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
                         mask: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Llama 2's R(g|p) = R̃_c(g|p) − β·KL, spread over tokens.

    scores [B] (the shaped reward R̃_c of each full response) → rewards [B, T]: −β·kl_t at every response
    token, plus the score at the last response token; also returns the per-token kl [B, T].
    """
    kl = per_token_kl(logprobs, ref_logprobs) * mask
    rewards = -beta * kl
    last = (mask.sum(dim=1).long() - 1).clamp_min(0)  # index of each response's last token
    rewards = rewards.scatter_add(1, last.unsqueeze(1), scores.unsqueeze(1).to(rewards.dtype))
    return rewards * mask, kl


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over right-padded responses → (advantages [B, T], returns [B, T]).

    δ_t = r_t + γ·V_{t+1} − V_t with V past the last token = 0; A_t = δ_t + γλ·A_{t+1}; returns = A + V.
    """
    B, T = rewards.shape
    advantages = torch.zeros_like(rewards)
    next_advantage = torch.zeros(B, dtype=rewards.dtype, device=rewards.device)
    next_value = torch.zeros_like(next_advantage)
    for t in reversed(range(T)):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_advantage = (delta + gamma * lam * next_advantage) * mask[:, t]
        advantages[:, t] = next_advantage
        next_value = values[:, t] * mask[:, t]
    returns = (advantages + values) * mask
    return advantages, returns


def ppo_policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                    mask: torch.Tensor, clip: float = 0.2) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped surrogate: mean over tokens of max(−A·ρ, −A·clip(ρ, 1−ε, 1+ε)), ρ = π_θ/π_old.

    Returns (loss, {"clip_fraction": share of tokens where the clipped term was taken,
    "approx_kl": mean ½(log ρ)², the k2 estimate of KL(π_old ‖ π_θ)}).
    """
    log_ratio = logprobs - old_logprobs
    ratio = log_ratio.exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip, 1.0 + clip)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {
            "clip_fraction": masked_mean((clipped > unclipped).float(), mask),
            "approx_kl": masked_mean(0.5 * log_ratio ** 2, mask),
        }
    return loss, stats


def ppo_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
                   clip: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped value loss ½·mean max((V − R)², (V_old + clip(V − V_old, ±ε) − R)²) → (loss, clip fraction)."""
    clipped_values = old_values + (values - old_values).clamp(-clip, clip)
    unclipped_error = (values - returns) ** 2
    clipped_error = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped_error, clipped_error), mask)
    with torch.no_grad():
        clip_fraction = masked_mean((clipped_error > unclipped_error).float(), mask)
    return loss, clip_fraction


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax(logits) per position, in nats: [..., V] → [...]."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)
