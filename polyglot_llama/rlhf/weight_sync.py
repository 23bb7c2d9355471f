"""Rollout engines that hold their own copy of the policy, and the weight push that keeps that copy current.

PPO samples from the policy it trains. With the HF backend it samples from the trained module itself; a
separate inference engine (vLLM) loads the policy from disk once and would then sample from the starting
weights forever. `push_policy_weights` therefore runs after every optimizer update: it streams the policy's
parameters, full-size (FSDP2 shards all-gathered, ZeRO-3 partitions gathered, one parameter at a time) and
named as in the Hugging Face checkpoint the engine was loaded from, into the engine's ``load_weights``.
"""

from __future__ import annotations

from typing import Iterable, Protocol

import torch

from ..runtime import Runtime
from .generation import Generation, SamplingConfig


class RolloutEngine(Protocol):
    """What PPO needs of an engine with its own copy of the policy (`generation.VLLMEngine` is one)."""

    def generate(self, prompts: list[list[int]], sampling: SamplingConfig, seeds: list[int]) -> list[Generation]:
        ...

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        ...


def push_policy_weights(model, engine: RolloutEngine, runtime: Runtime) -> None:
    """Load the prepared `PolicyWithValue`'s policy weights into ``engine`` (collective: every rank calls it,
    each feeding its own engine). Names lose the ``policy.`` prefix, so they are the checkpoint's names
    (``model.layers.0.self_attn.q_proj.weight``, …); a tied LM head is not sent twice."""
    engine.load_weights(runtime.full_parameters(model, prefix="policy."))
