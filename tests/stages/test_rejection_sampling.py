"""Rejection sampling end to end on a tiny model with a programmatic reward (answers in the prompt's script).

An untrained multilingual model writes tokens of every script at random; best-of-K keeps the answers with
the most letters in the prompt's script, and fine-tuning on the pool over rounds must raise the mean
reward of fresh samples clearly, per language, while the pool keeps the best answer of all rounds.
"""

from __future__ import annotations

import json

import pytest

from polyglot_test_utils import sample_texts
from polyglot_llama.config import from_dict
from polyglot_llama.errors import UserError
from polyglot_llama.io import write_jsonl
from polyglot_llama.rlhf.rejection_sampling import RejectionSamplingConfig, run

SFT = {"batch_size": 4, "loop": {"max_steps": 16, "micro_batch_size": 4, "log_every": 8, "mixed_precision": "no"},
       "optim": {"lr": 5e-3}, "schedule": {"kind": "constant", "warmup_steps": 0, "warmup_ratio": 0.0},
       "data": {"seq_len": 96}}


def write_prompts(path, langs=("ko", "zh"), per_lang=16):
    records = []
    for lang in langs:
        for i, text in enumerate(sample_texts(lang)[:per_lang]):
            records.append({"id": f"{lang}-{i}", "lang": lang, "prompt": text[:16 + i]})
    write_jsonl(path, records)
    return path


def rs_config(model, prompts, output, round_no, previous=()):
    return from_dict(RejectionSamplingConfig, dict(
        model=str(model), output=str(output), prompts=[str(prompts)], samples_per_prompt=8, round=round_no,
        sampling={"temperature": 1.0, "max_new_tokens": 8, "batch_size": 128, "backend": "hf"},
        reward={"kind": "target_script"}, previous_pools=[str(p) for p in previous], sft=SFT,
    ))


def test_rounds_raise_reward(tmp_path, multi_model_dir, one_thread):
    prompts = write_prompts(tmp_path / "prompts.jsonl")
    model, pools, reports = multi_model_dir, [], []
    for round_no in (1, 2, 3):
        report = run(rs_config(model, prompts, tmp_path / f"r{round_no}", round_no, pools))
        reports.append(report)
        pools.append(tmp_path / f"r{round_no}" / "pool.jsonl")
        model = tmp_path / f"r{round_no}" / "model"
    first, last = reports[0], reports[-1]
    # best of K beats one sample, and the Figure 7 curve rises with k
    assert first["all"]["best_of_k_gain"] > 0.05
    curve = first["all"]["reward_vs_k"]
    assert len(curve) == 8 and all(b >= a for a, b in zip(curve, curve[1:])) and curve[-1] > curve[0]
    # fresh samples of the fine-tuned policy score higher (per language too)
    later = (reports[1]["all"]["mean_reward"] + last["all"]["mean_reward"]) / 2
    assert later > first["all"]["mean_reward"] + 0.025
    for lang in ("ko", "zh"):
        assert last["languages"][lang]["mean_reward"] > first["languages"][lang]["mean_reward"] + 0.01
    # the pool (best answers over all rounds) improves every round, in every language
    for lang in ("ko", "zh"):
        pool_means = [r["languages"][lang]["pool_mean_reward"] for r in reports]
        assert pool_means[0] < pool_means[1] < pool_means[2]
    # the pool keeps, per prompt, the best answer over all rounds
    pool = {r["id"]: r for r in map(json.loads, pools[-1].read_text().splitlines())}
    for earlier in pools[:-1]:
        for r in map(json.loads, earlier.read_text().splitlines()):
            assert pool[r["id"]]["reward"] >= r["reward"] - 1e-6
    assert set(pool) == {f"{lang}-{i}" for lang in ("ko", "zh") for i in range(16)}
    assert all(r["messages"][-1] == {"role": "assistant", "content": r["response"]} for r in pool.values())
    assert (tmp_path / "r3" / "reward_vs_k.png").stat().st_size > 1000
    assert "| ko |" in (tmp_path / "r3" / "report.md").read_text()


def test_bad_input_is_one_line(tmp_path, multi_model_dir):
    with pytest.raises(UserError, match="K must be at least 1"):
        from_dict(RejectionSamplingConfig, {"model": "m", "output": "o", "prompts": ["p"], "samples_per_prompt": 0,
                                            "reward": {"kind": "target_script"}})
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    cfg = rs_config(multi_model_dir, empty, tmp_path / "out", 1)
    with pytest.raises(UserError, match="no usable prompt"):
        run(cfg)
