"""Kill a training stage right after a checkpoint, rerun the same command: the result equals an
uninterrupted run (same per-step losses, same final weights). Pretrain, PPO and GAtt have their own."""

from __future__ import annotations

import json
import random

import pytest
from safetensors.torch import load_file

from polyglot_llama.config import load_config
from polyglot_llama.train import checkpointing, reward, sft
from polyglot_test_utils import sample_texts


class _Killed(Exception):
    pass


def _chat_data(path):
    rng = random.Random(0)
    rows = [{"messages": [{"role": "user", "content": f"Repeat {rng.randrange(1000)}: {t[:30]}"},
                          {"role": "assistant", "content": t[:40]}]} for t in sample_texts("en")[:24]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _pair_data(path):
    en, de = sample_texts("en"), sample_texts("de")
    rows = [{"prompt": e[:20], "chosen": e[20:60], "rejected": d[20:60]} for e, d in zip(en[:24], de[:24])]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _killed_then_resumed(run, config_cls, values, tmp_path, monkeypatch):
    """Run uninterrupted into full/, then into resumed/ killed after the first checkpoint and rerun."""
    run(load_config(config_cls, None, {**values, "output": str(tmp_path / "full")}))
    real_save = checkpointing.save

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        raise _Killed

    monkeypatch.setattr(checkpointing, "save", save_then_die)
    with pytest.raises(_Killed):
        run(load_config(config_cls, None, {**values, "output": str(tmp_path / "resumed")}))
    saved_steps = []

    def counted_save(*args, **kwargs):
        saved_steps.append(kwargs.get("step", args[1] if len(args) > 1 else None))
        return real_save(*args, **kwargs)

    monkeypatch.setattr(checkpointing, "save", counted_save)
    run(load_config(config_cls, None, {**values, "output": str(tmp_path / "resumed")}))
    assert len(saved_steps) == 1, saved_steps  # resumed at step 3: only the step-6 checkpoint is written again


def _losses(metrics_file):
    rows = [json.loads(line) for line in metrics_file.read_text().splitlines()]
    rows = [r for r in rows if "loss" in r]
    assert len({r["step"] for r in rows}) == len(rows), "a step was logged twice: the run restarted instead of resuming"
    return {r["step"]: r["loss"] for r in rows}


def _same_weights(a, b):
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    for name in wa:
        assert (wa[name] - wb[name]).abs().max().item() < 1e-5, name


def test_sft_killed_and_resumed_equals_uninterrupted(tmp_path, en_model_dir, monkeypatch):
    values = {"model": str(en_model_dir), "data.train": [str(_chat_data(tmp_path / "chat.jsonl"))], "data.seq_len": 64,
              "data.validation_fraction": 0.0, "loop.max_steps": 6, "loop.save_every": 3, "loop.micro_batch_size": 4,
              "loop.log_every": 1, "batch_size": 4, "optim.lr": 1e-3, "schedule.warmup_steps": 1}
    _killed_then_resumed(sft.run, sft.SFTConfig, values, tmp_path, monkeypatch)
    full, resumed = _losses(tmp_path / "full" / "metrics.jsonl"), _losses(tmp_path / "resumed" / "metrics.jsonl")
    assert sorted(resumed) == sorted(full) == list(range(1, 7))
    assert all(resumed[s] == pytest.approx(full[s], abs=1e-6) for s in full)
    _same_weights(tmp_path / "full", tmp_path / "resumed")


def test_reward_killed_and_resumed_equals_uninterrupted(tmp_path, en_model_dir, monkeypatch):
    values = {"model": str(en_model_dir), "data.train": [str(_pair_data(tmp_path / "pairs.jsonl"))],
              "loop.max_steps": 6, "loop.save_every": 3, "loop.micro_batch_size": 4, "loop.grad_accum": 1,
              "loop.log_every": 1, "optim.lr": 1e-3, "schedule.warmup_steps": 1}
    _killed_then_resumed(reward.run, reward.RewardConfig, values, tmp_path, monkeypatch)
    full, resumed = (_losses(tmp_path / run / "training" / "metrics.jsonl") for run in ("full", "resumed"))
    assert sorted(resumed) == sorted(full) == list(range(1, 7))
    assert all(resumed[s] == pytest.approx(full[s], abs=1e-6) for s in full)
    _same_weights(tmp_path / "full", tmp_path / "resumed")


def test_rejection_sampling_killed_in_finetune_resumes_to_the_same_result(tmp_path, multi_model_dir, monkeypatch):
    """Killed after sampling, during the pool fine-tune: the rerun reuses the samples and resumes the
    fine-tune; pool, report and weights equal an uninterrupted run's."""
    from polyglot_llama.io import write_jsonl
    from polyglot_llama.rlhf import rejection_sampling

    prompts = tmp_path / "prompts.jsonl"
    write_jsonl(prompts, [{"id": f"{lang}-{i}", "lang": lang, "prompt": text[:16 + i]}
                          for lang in ("ko", "zh") for i, text in enumerate(sample_texts(lang)[:6])])
    values = {"model": str(multi_model_dir), "prompts": [str(prompts)], "samples_per_prompt": 3,
              "sampling": {"temperature": 1.0, "max_new_tokens": 6, "batch_size": 64, "backend": "hf"},
              "reward": {"kind": "target_script"},
              "sft": {"batch_size": 4, "loop": {"max_steps": 4, "save_every": 2, "micro_batch_size": 4, "mixed_precision": "no"},
                      "optim": {"lr": 5e-3}, "schedule": {"kind": "constant", "warmup_steps": 0, "warmup_ratio": 0.0},
                      "data": {"seq_len": 64}}}
    _killed_then_resumed(rejection_sampling.run, rejection_sampling.RejectionSamplingConfig, values, tmp_path, monkeypatch)
    for name in ("samples.jsonl", "pool.jsonl"):
        assert (tmp_path / "full" / name).read_text() == (tmp_path / "resumed" / name).read_text()
    full, resumed = (json.loads((tmp_path / run / "report.json").read_text()) for run in ("full", "resumed"))
    assert resumed["all"] == full["all"] and resumed["sft"]["train_loss"] == pytest.approx(full["sft"]["train_loss"], abs=1e-6)
    _same_weights(tmp_path / "full" / "model", tmp_path / "resumed" / "model")
