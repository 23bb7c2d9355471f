"""Pure loss functions shared by every training stage (no state, no I/O).

Shapes: B batch, T sequence length, V vocabulary. ``labels`` use -100 for positions without loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Next-token cross-entropy: position t predicts ``labels[t + 1]``.

    logits [B, T, V], labels [B, T] → (mean loss over counted tokens, number of counted tokens).
    A batch without any counted token gives a zero loss that still carries a gradient graph.
    """
    shift_logits = logits[:, :-1, :].float()
    shift_labels = labels[:, 1:]
    n_tokens = int((shift_labels != IGNORE_INDEX).sum())
    total = F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1),
        ignore_index=IGNORE_INDEX, reduction="sum",
    )
    return total / max(n_tokens, 1), n_tokens


def token_logprobs(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Log-probability of each next token: logits [B, T, V], ids [B, T] → [B, T-1] (position t scores id t+1)."""
    logprobs = torch.log_softmax(logits[:, :-1, :].float(), dim=-1)
    return logprobs.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)


# Reward-model margins m(r) by preference strength (Llama 2 Table 27): a pair rated "significantly better"
# must be separated by a larger reward gap than a "slightly better" one before its loss vanishes.
REWARD_MARGINS: dict[str, dict[str, float]] = {
    "none": {"significantly_better": 0.0, "better": 0.0, "slightly_better": 0.0, "negligibly_better": 0.0},
    "small": {"significantly_better": 1.0, "better": 2.0 / 3.0, "slightly_better": 1.0 / 3.0, "negligibly_better": 0.0},
    "large": {"significantly_better": 3.0, "better": 2.0, "slightly_better": 1.0, "negligibly_better": 0.0},
}


def reward_margin_loss(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor,
                       margins: torch.Tensor | None = None) -> torch.Tensor:
    """Binary ranking loss with a margin, ``mean(−log σ(r_c − r_r − m))`` (Llama 2 eq. 2).

    chosen_rewards, rejected_rewards [B] (scalar scores of each pair's two responses), margins [B] or None
    (no margin) → scalar loss. ``logsigmoid`` keeps it finite for large reward gaps.
    """
    gap = chosen_rewards.float() - rejected_rewards.float()
    if margins is not None:
        gap = gap - margins.to(gap)
    return -F.logsigmoid(gap).mean()
