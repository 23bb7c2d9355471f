"""What one optimizer step averages over, and how the global batch and warm-up resolve."""

import pytest
import torch

from polyglot_llama.errors import UserError
from polyglot_llama.train.loop import ScheduleConfig, count_lm_tokens, resolve_grad_accum
from polyglot_llama.train.reward import RewardConfig, count_pairs
from polyglot_llama.train.reward_data import collate_pairs


def test_units_are_labelled_targets_or_pairs():
    labels = torch.tensor([[-100, 5, 6, -100], [7, -100, -100, 8]])
    assert count_lm_tokens({"labels": labels}) == 3  # targets are labels[:, 1:]: 5, 6 and 8
    pairs = [{"chosen_ids": [1, 2, 3], "rejected_ids": [1, 4], "margin": 1.0}] * 3
    batch = collate_pairs(pairs, pad_id=0)
    assert batch["input_ids"].shape[0] == 6 and count_pairs(batch) == 3  # 3 pairs in 6 rows
    with pytest.raises(ValueError, match="count_fn"):
        count_lm_tokens(batch)


def test_global_batch_resolves_per_process_count():
    assert resolve_grad_accum(512, 8, 1) == 64 and resolve_grad_accum(512, 8, 8) == 8
    assert resolve_grad_accum(0, 8, 4, grad_accum=3) == 3  # 0: accumulation as given
    with pytest.raises(UserError, match="loop.global_batch_size.*8 × 3"):
        resolve_grad_accum(512, 8, 3)
    loop = RewardConfig.__dataclass_fields__["loop"].default_factory()
    assert loop.global_batch_size == 512 and loop.micro_batch_size == 8  # Llama 2: 512 pairs on any process count


def test_warmup_is_capped_to_the_stage():
    s = ScheduleConfig(warmup_steps=2000)
    assert s.warmup_for(500) == 50 and s.warmup_for(100_000) == 2000 and s.warmup_for(5) == 1
    assert s.lr_factor(50, 500) == 1.0  # the peak is reached
    assert ScheduleConfig(warmup_steps=2000, max_warmup_ratio=0).warmup_for(500) == 499
