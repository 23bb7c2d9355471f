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
    # Shift the labels, not the logits: slicing logits [B, T-1, V] would copy the largest tensor of the step.
    shift_labels = F.pad(labels, (0, 1), value=IGNORE_INDEX)[:, 1:]
    n_tokens = int((shift_labels != IGNORE_INDEX).sum())
    total = F.cross_entropy(
        logits.float().reshape(-1, logits.size(-1)), shift_labels.reshape(-1),
        ignore_index=IGNORE_INDEX, reduction="sum",
    )
    return total / max(n_tokens, 1), n_tokens


def count_lm_targets(labels: torch.Tensor) -> int:
    """How many positions ``causal_lm_loss`` counts: labels [B, T] → the labelled targets ``labels[:, 1:]``."""
    return int((labels[:, 1:] != IGNORE_INDEX).sum())


class _LinearCrossEntropy(torch.autograd.Function):
    """Σ cross-entropy of ``hidden @ weight.T`` without holding the [N, V] logits: chunk by chunk, the fp32
    logits of ``chunk`` rows are made, reduced to the loss and turned at once into this chunk's gradients
    (softmax − one-hot), so backward only scales the stored gradients by the incoming scalar.

    Memory: one [chunk, V] fp32 block plus grad_hidden [N, H] and an fp32 grad_weight [V, H], instead of
    logits, their fp32 copy and the saved log-softmax (3 × [N, V]). Compute: the same three matmuls.
    """

    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk_size, grad_enabled):
        # needs_input_grad follows requires_grad even under torch.no_grad(): validation of a trainable model
        # would build a [V, H] fp32 gradient per batch (and a softmax per chunk) that nothing ever reads.
        need_h, need_w = grad_enabled and ctx.needs_input_grad[0], grad_enabled and ctx.needs_input_grad[1]
        w = weight.to(hidden.dtype)  # autocast/bf16 hidden: compute as the model's lm_head would
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk_size):
            h, y = hidden[start:start + chunk_size], targets[start:start + chunk_size]
            valid = y != IGNORE_INDEX
            logits = (h @ w.T).float()  # [c, V]
            target_logit = logits.gather(1, y.clamp_min(0).unsqueeze(1)).squeeze(1)
            if need_h or need_w:
                # The softmax in place and log-sum-exp from the same exponentials: logsumexp would make a
                # second [c, V] block beside the logits at the step's peak of memory.
                row_max = logits.amax(dim=-1, keepdim=True)
                grad = logits.sub_(row_max).exp_()  # [c, V]
                sums = grad.sum(dim=-1, keepdim=True)
                lse = (row_max + sums.log()).squeeze(1)
                grad.div_(sums)  # softmax
                rows = torch.arange(y.shape[0], device=y.device)
                grad[rows, y.clamp_min(0)] -= 1.0
                grad[~valid] = 0.0  # rows without a target: a row write, not a pass over [c, V]
                grad = grad.to(hidden.dtype)
                if need_h:
                    grad_h[start:start + chunk_size] = grad @ w
                if need_w:
                    grad_w.addmm_(grad.T.float(), h.float())  # no copy when already fp32
            else:
                lse = torch.logsumexp(logits, dim=-1)
            total += ((lse - target_logit) * valid).sum()
        # Kept on ctx rather than saved for backward: backward scales them in place and hands them over
        # (one [V, H] buffer, not two). The loop never backpropagates through one graph twice.
        ctx.grads, ctx.weight_dtype = (grad_h, grad_w), weight.dtype
        return total

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w = ctx.grads
        ctx.grads = None
        if grad_h is not None:
            grad_h.mul_(grad_out.to(grad_h.dtype))
        if grad_w is not None:
            grad_w = grad_w.mul_(grad_out).to(ctx.weight_dtype)
        return grad_h, grad_w, None, None, None


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         chunk_size: int = 1024) -> torch.Tensor:
    """Summed cross-entropy of the logits ``hidden @ weight.T`` against ``targets`` (-100: not counted).

    hidden [N, H] (the final hidden states), weight [V, H] (the LM head), targets [N] → a scalar sum that
    backpropagates into hidden and weight. Equal to ``F.cross_entropy(hidden @ weight.T, targets,
    reduction="sum")`` in fp32, without ever holding the [N, V] logits (see `_LinearCrossEntropy`).
    """
    return _LinearCrossEntropy.apply(hidden, weight, targets, chunk_size, torch.is_grad_enabled())


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


# ----------------------------------------------------------------------------------------------------- PPO
# Shapes: B rollouts, T response positions (right-padded); ``mask`` [B, T] is 1.0 on response tokens and
# 0.0 on padding, contiguous from position 0 (a response is tokens 0..len-1).


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


# ----------------------------------------------------------------------------------------------------- DPO
# Shapes: B pairs. Log-probabilities are summed over each response's tokens (nats) unless said otherwise.


def sequence_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probability of each row's labelled tokens and how many there are.

    logits [N, T, V], labels [N, T] (-100 where not scored; position t predicts ``labels[t + 1]``, as in
    `causal_lm_loss`) → (sum [N] in nats, token count [N]). Picks the label logit and subtracts the
    log-sum-exp instead of building a [N, T, V] log-softmax copy.
    """
    shift_labels = F.pad(labels, (0, 1), value=IGNORE_INDEX)[:, 1:]
    mask = shift_labels != IGNORE_INDEX
    logits = logits.float()
    picked = logits.gather(-1, shift_labels.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    logprobs = (picked - torch.logsumexp(logits, dim=-1)) * mask
    return logprobs.sum(-1), mask.sum(-1)


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float, label_smoothing: float = 0.0,
             offsets: torch.Tensor | None = None) -> torch.Tensor:
    """Sigmoid DPO (Rafailov et al. 2023, eq. 7), conservative label smoothing ε (Mitchell 2023, "cDPO")
    and a per-pair offset Δ (Amini et al. 2024, "ODPO"):

        z = β·[(log π(y_c) − log π_ref(y_c)) − (log π(y_r) − log π_ref(y_r))] − Δ
        loss = mean(−(1 − ε)·log σ(z) − ε·log σ(−z))

    All inputs [B] summed log-probs; offsets [B] (in implicit-reward units) or None → scalar loss.
    """
    z = beta * ((policy_chosen.float() - ref_chosen.float()) - (policy_rejected.float() - ref_rejected.float()))
    if offsets is not None:
        z = z - offsets.to(z)
    losses = -(1.0 - label_smoothing) * F.logsigmoid(z)
    if label_smoothing:
        losses = losses - label_smoothing * F.logsigmoid(-z)
    return losses.mean()


def ipo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, chosen_tokens: torch.Tensor, rejected_tokens: torch.Tensor,
             tau: float) -> torch.Tensor:
    """IPO (Azar et al. 2023, eq. 17): mean((h − 1/(2τ))²), where h is the difference of the chosen and
    rejected log-ratios log π/π_ref, each averaged over its response tokens (as TRL does, a normalisation
    the IPO authors confirmed: without it the square grows with the response length).

    Log-probs [B] summed over tokens, token counts [B] → scalar loss.
    """
    chosen = (policy_chosen.float() - ref_chosen.float()) / chosen_tokens.clamp_min(1)
    rejected = (policy_rejected.float() - ref_rejected.float()) / rejected_tokens.clamp_min(1)
    return ((chosen - rejected - 1.0 / (2.0 * tau)) ** 2).mean()
