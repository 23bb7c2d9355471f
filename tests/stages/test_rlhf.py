"""The rlhf driver end to end: rejection-sampling rounds feeding each other, then PPO; a rerun resumes."""

from __future__ import annotations

import pytest

from polyglot_llama.config import from_dict
from polyglot_llama.errors import UserError
from polyglot_llama.rlhf.driver import RLHFConfig, run
from test_rejection_sampling import write_prompts


def config(tmp_path, model, prompts, **extra):
    return from_dict(RLHFConfig, {
        "model": str(model), "output": str(tmp_path / "rlhf"), "prompts": [str(prompts)], "rounds": 2,
        "reward": {"kind": "target_script"},
        "rejection_sampling": {
            "samples_per_prompt": 3, "sampling": {"temperature": 1.0, "max_new_tokens": 8, "backend": "hf"},
            "sft": {"batch_size": 2, "loop": {"max_steps": 2, "micro_batch_size": 2, "mixed_precision": "no"},
                    "schedule": {"kind": "constant", "warmup_steps": 0, "warmup_ratio": 0.0}, "data": {"seq_len": 64}},
        },
        "ppo_settings": {"steps": 2, "batch_size": 4, "mini_batch_size": 2, "micro_batch_size": 2, "eval_every": 1,
                         "eval_fraction": 0.25, "value_model": "separate", "sampling": {"max_new_tokens": 6, "backend": "hf"},
                         "optim": {"lr": 1e-4}},
        **extra,
    })


def test_rounds_then_ppo_and_resume(tmp_path, multi_model_dir):
    prompts = write_prompts(tmp_path / "prompts.jsonl", langs=("en", "ko"), per_lang=4)
    summary = run(config(tmp_path, multi_model_dir, prompts))
    out = tmp_path / "rlhf"
    assert [r["round"] for r in summary["rounds"]] == [1, 2]
    for n in (1, 2):
        assert (out / f"round_{n:02d}" / "model" / "config.json").is_file()
    # round 2 started from round 1's model and competed with round 1's pool
    round2 = (out / "round_02" / "rejection-sampling.config.yaml").read_text()
    assert str(out / "round_01" / "model") in round2 and str(out / "round_01" / "pool.jsonl") in round2
    assert set(summary["rounds"][0]["languages"]) == {"en", "ko"}
    assert summary["ppo"]["steps"] == 2 and summary["model"] == str(out / "ppo" / "model")
    assert (out / "ppo" / "model" / "config.json").is_file()
    ppo_cfg = (out / "ppo" / "ppo.config.yaml").read_text()
    assert f"reference: {out / 'round_02' / 'model'}" in ppo_cfg  # PPO's reference is the last round's policy

    # A rerun skips the finished rounds and resumes PPO from its checkpoint: nothing is redone.
    stamps = {p: p.stat().st_mtime_ns for p in (out / "round_01" / "report.json", out / "round_02" / "samples.jsonl")}
    again = run(config(tmp_path, multi_model_dir, prompts))
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert again["ppo"]["last"] == summary["ppo"]["last"]


def test_driver_sections_are_validated_up_front(tmp_path):
    with pytest.raises(UserError, match="samples_per_prompt"):
        from_dict(RLHFConfig, {"model": "m", "output": "o", "prompts": ["p"], "reward": {"kind": "target_script"},
                               "rejection_sampling": {"samples_per_prompt": 0}})
    with pytest.raises(UserError, match="unknown key"):
        from_dict(RLHFConfig, {"model": "m", "output": "o", "prompts": ["p"], "reward": {"kind": "target_script"},
                               "ppo_settings": {"stepz": 3}})
    with pytest.raises(UserError, match="set by the driver"):
        from_dict(RLHFConfig, {"model": "m", "output": "o", "prompts": ["p"], "reward": {"kind": "target_script"},
                               "ppo_settings": {"prompts": ["x"]}})
