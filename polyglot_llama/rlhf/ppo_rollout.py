"""PPO rollouts: sample answers, score them, and turn them into the tensors the update needs.

A `Rollout` holds B sequences laid out as ``[left padding, prompt, response, right padding]`` (prompts end
at column P) with, per response token (R columns, ``mask`` [B, R]): the behaviour policy's log-probs, the
reference's log-probs, the value estimates, the KL-penalised rewards, GAE advantages and returns.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ..train.losses import gae, kl_penalised_rewards, masked_whiten
from .generation import Generation, SamplingConfig, derive_seed, generate
from .ppo_model import PolicyWithValue, gather_logprobs, reference_logprobs
from .prompts import Prompt
from .rewards import RewardScorer, shape_rewards


@dataclass
class Rollout:
    input_ids: torch.Tensor  # [B, L]
    attention_mask: torch.Tensor  # [B, L]
    prompt_width: int  # P
    mask: torch.Tensor  # [B, R] response tokens
    old_logprobs: torch.Tensor  # [B, R]
    ref_logprobs: torch.Tensor  # [B, R]
    old_values: torch.Tensor  # [B, R]
    advantages: torch.Tensor  # [B, R], whitened
    returns: torch.Tensor  # [B, R]
    scores: torch.Tensor  # [B] raw reward in [0, 1]
    kl: torch.Tensor  # [B, R] per-token KL to the reference
    langs: list[str]
    timings: dict[str, float]

    @property
    def size(self) -> int:
        return self.input_ids.shape[0]

    def rows(self, index: torch.Tensor) -> dict:
        """Tensors of the rows in ``index``, with right padding beyond their longest response cut off."""
        mask = self.mask[index]
        width = int(mask.sum(dim=1).max())
        seq = self.prompt_width + width
        return {"input_ids": self.input_ids[index, :seq], "attention_mask": self.attention_mask[index, :seq],
                "response_len": width, "mask": mask[:, :width], "old_logprobs": self.old_logprobs[index, :width],
                "old_values": self.old_values[index, :width], "advantages": self.advantages[index, :width],
                "returns": self.returns[index, :width]}


def layout(generations: list[Generation], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """(input_ids [B, P+R], attention_mask, response mask [B, R], P) for prompt + response sequences."""
    P = max(len(g.prompt_ids) for g in generations)
    R = max(len(g.completion_ids) for g in generations)
    B = len(generations)
    input_ids = torch.full((B, P + R), pad_id, dtype=torch.long)
    attention = torch.zeros((B, P + R), dtype=torch.long)
    mask = torch.zeros((B, R))
    for row, g in enumerate(generations):
        n_prompt, n_resp = len(g.prompt_ids), len(g.completion_ids)
        input_ids[row, P - n_prompt:P] = torch.tensor(g.prompt_ids)
        input_ids[row, P:P + n_resp] = torch.tensor(g.completion_ids)
        attention[row, P - n_prompt:P + n_resp] = 1
        mask[row, :n_resp] = 1
    return input_ids, attention, mask, P


@torch.no_grad()
def collect(model: PolicyWithValue, reference, tokenizer, scorer: RewardScorer, prompts: list[Prompt],
            sampling: SamplingConfig, seeds: list[int], *, beta: float, gamma: float, lam: float, shaping: str,
            micro_batch_size: int, autocast) -> Rollout:
    """Sample, score and evaluate one PPO batch (``prompts`` [B]) into a `Rollout`."""
    device = next(model.parameters()).device
    start = time.perf_counter()
    generations = generate(model.policy, tokenizer, [p.ids for p in prompts], sampling, seeds, progress=False)
    rollout_s = time.perf_counter() - start

    start = time.perf_counter()
    scores = scorer(prompts, [g.text for g in generations]).float()
    shaped = shape_rewards(scores, shaping)
    scoring_s = time.perf_counter() - start

    start = time.perf_counter()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    input_ids, attention, mask, P = layout(generations, pad_id)
    R = mask.shape[1]
    old_logprobs, ref_lp, values = (torch.zeros(len(prompts), R) for _ in range(3))
    model.eval()
    for lo in range(0, len(prompts), micro_batch_size):
        rows = slice(lo, lo + micro_batch_size)
        ids, att = input_ids[rows].to(device), attention[rows].to(device)
        with autocast():
            logits, v = model.response_outputs(ids, att, P, R)
            ref_lp[rows] = reference_logprobs(reference, ids, att, P, R).cpu()
        old_logprobs[rows] = gather_logprobs(logits, ids[:, P:P + R]).cpu()
        values[rows] = v.float().cpu()
    rewards, kl = kl_penalised_rewards(shaped, old_logprobs, ref_lp, mask, beta)
    advantages, returns = gae(rewards, values * mask, mask, gamma, lam)
    advantages = masked_whiten(advantages, mask)
    forward_s = time.perf_counter() - start
    return Rollout(input_ids, attention, P, mask, old_logprobs, ref_lp, values * mask, advantages, returns, scores, kl,
                   [p.lang for p in prompts], {"rollout_s": rollout_s, "scoring_s": scoring_s, "logprob_s": forward_s})


def rollout_seeds(seed: int, step: int, prompts: list[Prompt]) -> list[int]:
    """One seed per rollout; the position in the batch keeps a prompt drawn twice from repeating its sample."""
    return [derive_seed(seed, "ppo", step, i, p.id) for i, p in enumerate(prompts)]
