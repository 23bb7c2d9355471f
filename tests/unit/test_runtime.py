"""The shared runtime on one CPU process: precision rules, rank shares and the one-line share errors."""

from __future__ import annotations

import pytest
import torch

from polyglot_llama.errors import UserError
from polyglot_llama.runtime import Runtime, frozen_dtype, resolve_precision


def test_cpu_rules():
    assert frozen_dtype(torch.device("cpu")) == torch.float32
    if not torch.cuda.is_available():
        assert resolve_precision("auto") == "no"  # bf16 autocast is slow on CPUs
    assert resolve_precision("bf16") == "bf16"


def test_shares_of_a_global_batch(monkeypatch):
    runtime = Runtime("no")
    assert (runtime.rank, runtime.world, runtime.is_main) == (0, 1, True)
    assert runtime.shard(8, "batch_size") == slice(0, 8)
    assert runtime.gather_rows([1, 2]) == [1, 2] and runtime.sum_floats({"a": 1.5}) == {"a": 1.5}
    # as rank 1 of 3: contiguous shares, even or not
    monkeypatch.setattr(runtime, "rank", 1)
    monkeypatch.setattr(runtime, "world", 3)
    assert runtime.shard(9, "batch_size") == slice(3, 6)
    assert runtime.split(10) == slice(3, 6)
    with pytest.raises(UserError, match="key 'batch_size' is 10; with 3 processes it must be a multiple of 3"):
        runtime.shard(10, "batch_size")
