import pytest

from polyglot_llama.errors import UserError
from polyglot_llama.train.loop import LoopConfig, OptimConfig, ScheduleConfig, _BatchOrder


def test_warmup_then_cosine_to_ten_percent():
    s = ScheduleConfig(warmup_steps=10, final_lr_ratio=0.1)
    assert s.lr_factor(0, 110) == pytest.approx(0.1)
    assert s.lr_factor(9, 110) == pytest.approx(1.0)
    assert s.lr_factor(10, 110) == pytest.approx(1.0)
    assert s.lr_factor(60, 110) == pytest.approx(0.55)  # half-way down the cosine: 0.1 + 0.9 · 0.5
    assert s.lr_factor(110, 110) == pytest.approx(0.1)


def test_warmup_ratio_with_minimum_and_constant():
    s = ScheduleConfig(warmup_ratio=0.03, min_warmup_steps=5, kind="constant")
    assert s.warmup_for(100) == 5 and s.warmup_for(1000) == 30
    assert s.lr_factor(500, 1000) == 1.0


def test_batch_order_one_process_with_accumulation_equals_two_processes():
    one = _BatchOrder(20, micro=2, world=1, rank=0, seed=3)
    two = [_BatchOrder(20, micro=2, world=2, rank=r, seed=3) for r in range(2)]
    # Optimizer step 0: micro-steps 0,1 on one process == micro-step 0 on ranks 0,1.
    assert one.indices(0) + one.indices(1) == two[0].indices(0) + two[1].indices(0)
    epoch = [i for step in range(10) for i in one.indices(step)]
    assert sorted(epoch) == list(range(20))  # one epoch visits every example once
    assert one.indices(10) != one.indices(0) or one.indices(11) != one.indices(1)  # a new permutation per epoch


def test_config_validation():
    with pytest.raises(UserError, match="loop.micro_batch_size"):
        LoopConfig(micro_batch_size=0)
    with pytest.raises(UserError, match="optim.betas"):
        OptimConfig(betas=[0.9])
