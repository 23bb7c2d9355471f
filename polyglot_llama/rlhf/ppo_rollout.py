"""PPO rollouts: sample answers, score them, and turn them into the tensors the update needs.

A `Rollout` holds B sequences laid out as ``[left padding, prompt, response, right padding]`` (prompts end
at column P) with, per response token (R columns, ``mask`` [B, R]): the behaviour policy's log-probs, the
reference's log-probs, the value estimates, the KL-penalised rewards, GAE advantages and returns.

With several processes each rank samples, scores and runs the forward passes for its contiguous share of
the global batch; the per-row results are then gathered so that every rank holds the whole batch, and the
batch-level steps (reward whitening, advantage whitening) see exactly what one process would.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ..runtime import Runtime
from ..train.losses import gae, kl_penalised_rewards, masked_whiten
from .generation import Generation, SamplingConfig, derive_seed, generate
from .ppo_model import gather_logprobs, reference_logprobs
from .prompts import Prompt
from .rewards import RewardScorer, shape_rewards
from .weight_sync import RolloutEngine


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
    finished: torch.Tensor  # [B] bool: the answer ended with EOS (False: cut at max_new_tokens)
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
def collect(model, reference, tokenizer, scorer: RewardScorer, prompts: list[Prompt], sampling: SamplingConfig,
            seeds: list[int], *, beta: float, gamma: float, lam: float, shaping: str, missing_eos_penalty: float,
            micro_batch_size: int, runtime: Runtime, engine: RolloutEngine | None = None) -> Rollout:
    """Sample, score and evaluate one global PPO batch (``prompts`` [B], the same list on every rank).

    ``model`` is the (prepared) `PolicyWithValue`; ``reference`` the frozen π_0 (placed by `Runtime.frozen`).
    Answers come from ``engine`` (a vLLM engine kept current by `weight_sync.push_policy_weights`) when
    given, else from the policy itself. This rank handles its share of the rows; the returned `Rollout`
    holds all B rows in the global order on every rank.
    """
    mine = runtime.shard(len(prompts), "batch_size")
    local, local_seeds = prompts[mine], seeds[mine]
    start = time.perf_counter()
    if engine is not None:
        generations = engine.generate([p.ids for p in local], sampling, local_seeds)
    else:
        with runtime.unwrapped_for_generation(model) as unwrapped:
            generations = generate(unwrapped.policy, tokenizer, [p.ids for p in local], sampling, local_seeds, progress=False)
    rollout_s = time.perf_counter() - start

    start = time.perf_counter()
    scores = scorer(local, [g.text for g in generations], [g.finished for g in generations]).float()
    scoring_s = time.perf_counter() - start

    start = time.perf_counter()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    input_ids, attention, mask, P = layout(generations, pad_id)
    R, T = mask.shape[1], sampling.temperature
    old_logprobs, ref_lp, values = (torch.zeros(len(local), R) for _ in range(3))
    device = runtime.device
    model.eval()
    reference_s = 0.0
    for lo in range(0, len(local), micro_batch_size):
        chunk = slice(lo, lo + micro_batch_size)
        ids, att = input_ids[chunk].to(device), attention[chunk].to(device)
        with runtime.autocast():
            logits, v = model(ids, att, P, R)
            ref_start = time.perf_counter()
            ref_lp[chunk] = reference_logprobs(reference, ids, att, P, R, T).cpu()  # .cpu() waits for the GPU
            reference_s += time.perf_counter() - ref_start
        old_logprobs[chunk] = gather_logprobs(logits, ids[:, P:P + R], T).cpu()
        values[chunk] = v.float().cpu()
    lengths = mask.sum(dim=1).long().tolist()
    rows = runtime.gather_rows([(g, float(scores[i]), old_logprobs[i, :n].clone(), ref_lp[i, :n].clone(), values[i, :n].clone())
                                for i, (g, n) in enumerate(zip(generations, lengths))])
    forward_s = time.perf_counter() - start
    rollout = assemble(rows, [p.lang for p in prompts], pad_id, beta=beta, gamma=gamma, lam=lam, shaping=shaping,
                       missing_eos_penalty=missing_eos_penalty)
    # logprob_s: the policy and critic passes (and the gather); reference_s: the frozen reference's passes
    rollout.timings.update(rollout_s=rollout_s, scoring_s=scoring_s, reference_s=reference_s, logprob_s=forward_s - reference_s)
    return rollout


def assemble(rows: list[tuple], langs: list[str], pad_id: int, *, beta: float, gamma: float, lam: float,
             shaping: str, missing_eos_penalty: float) -> Rollout:
    """The batch-level part of a rollout from per-row (generation, score, old log-probs [n], reference
    log-probs [n], values [n]) in global order: shaped rewards, the cut-off penalty, KL, GAE, whitening."""
    generations = [r[0] for r in rows]
    input_ids, attention, mask, P = layout(generations, pad_id)
    old_logprobs, ref_lp, values = (torch.zeros(mask.shape) for _ in range(3))
    for i, (_, _, old, ref, value) in enumerate(rows):
        old_logprobs[i, :len(old)], ref_lp[i, :len(ref)], values[i, :len(value)] = old, ref, value
    scores = torch.tensor([r[1] for r in rows], dtype=torch.float32)
    finished = torch.tensor([g.finished for g in generations])
    # An answer cut at max_new_tokens was never finished: TRL's missing_eos_penalty, in units of the shaped reward.
    shaped = shape_rewards(scores, shaping) - missing_eos_penalty * (~finished).float()
    rewards, kl = kl_penalised_rewards(shaped, old_logprobs, ref_lp, mask, beta)
    advantages, returns = gae(rewards, values, mask, gamma, lam)
    advantages = masked_whiten(advantages, mask)
    return Rollout(input_ids, attention, P, mask, old_logprobs, ref_lp, values, advantages, returns, scores, finished,
                   kl, langs, {})


def rollout_seeds(seed: int, step: int, prompts: list[Prompt]) -> list[int]:
    """One seed per rollout; the position in the batch keeps a prompt drawn twice from repeating its sample."""
    return [derive_seed(seed, "ppo", step, i, p.id) for i, p in enumerate(prompts)]
