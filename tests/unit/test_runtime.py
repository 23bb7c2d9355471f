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
    # padded shares: every rank gets ⌈n / 3⌉ rows (the same forwards everywhere), and says how many are real
    assert runtime.padded_share(list("abcdefg")) == (["c", "d", "d"], 2)
    assert runtime.padded_share(list("ab")) == (["a"], 1)
    monkeypatch.setattr(runtime, "rank", 0)
    assert runtime.padded_share(list("ab")) == (["a"], 0)  # an empty share runs a copy of row 0, counted as nothing
    assert runtime.padded_share([]) == ([], 0)


def test_precision_rules_every_stage_reads():
    """The loop, DPO, RLHF and eval take dtype and autocast from these rules; CPU: fp32 and no autocast."""
    from polyglot_llama.evaluation.lm import Runtime as EvalRuntime
    from polyglot_llama.runtime import autocast_for, pick_device, weights_dtype

    cpu = torch.device("cpu")
    assert pick_device("cpu") == cpu and pick_device("cuda:1") == torch.device("cuda", 1)
    assert weights_dtype("bfloat16", cpu) == torch.bfloat16 and weights_dtype("float16", cpu) == torch.float16
    assert weights_dtype("auto", cpu) == torch.float32
    with autocast_for(cpu, "bf16")():
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    with autocast_for(cpu, "no")():
        assert not torch.is_autocast_enabled("cpu")
    assert EvalRuntime(device="cpu", dtype="bfloat16").torch_dtype() == torch.bfloat16
    assert EvalRuntime(device="cpu", dtype="auto").torch_dtype() == torch.float32
    if not torch.cuda.is_available():
        assert pick_device("auto") == cpu and EvalRuntime().torch_device() == cpu
        with autocast_for(cpu, "auto")():  # auto is bf16 only on GPUs that support it
            assert not torch.is_autocast_enabled("cpu")


def test_frozen_placements_on_one_process(en_model_dir, tmp_path):
    """whole and offload give the same reference log-probs and reward scores; offload leaves no weight
    resident (they wait on 'meta' between forwards); 'shard' with one process keeps the model whole."""
    from polyglot_llama.model.checkpoint import load_causal_lm, load_tokenizer, save_checkpoint
    from polyglot_llama.model.reward_model import build_reward_model, load_reward_model, score
    from polyglot_llama.rlhf.ppo_model import reference_logprobs

    runtime = Runtime("no")
    ids = torch.randint(3, 500, (2, 9), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, :2] = 0  # a left-padded row
    whole = runtime.frozen(load_causal_lm(en_model_dir), "whole")
    assert all(p.dtype == torch.float32 and not p.requires_grad for p in whole.parameters()) and not whole.training
    expected = reference_logprobs(whole, ids, mask, 5, 4, 0.7)
    assert runtime.frozen(load_causal_lm(en_model_dir), "shard").__class__ is whole.__class__  # nothing to shard
    offloaded = runtime.frozen(load_causal_lm(en_model_dir), "offload")
    assert {p.device.type for p in offloaded.parameters()} == {"meta"}
    assert torch.allclose(reference_logprobs(offloaded, ids, mask, 5, 4, 0.7), expected, atol=1e-6, rtol=0)

    save_checkpoint(build_reward_model(en_model_dir, seed=1), tmp_path / "rm", tokenizer_dir=en_model_dir)
    rm, tokenizer = load_reward_model(tmp_path / "rm")
    prompts, answers = ["Say hi", "Tell me more"], ["hello", "more and more words"]
    expected_scores = score(rm, tokenizer, prompts, answers)
    rm_offloaded = runtime.frozen(load_reward_model(tmp_path / "rm")[0], "offload")
    assert torch.allclose(score(rm_offloaded, load_tokenizer(tmp_path / "rm"), prompts, answers), expected_scores, atol=1e-6)
