"""PPO with a rollout engine that holds its own copy of the policy (the vLLM backend's shape), on CPU.

vLLM cannot run here (no GPU), so `ppo.rollout_engine` is replaced by a double that behaves as the vLLM
engine does for PPO: it loads the starting checkpoint from disk once, samples from its own copy, and
changes only through ``load_weights``. The run must push the policy after every update, with the
checkpoint's parameter names and shapes and the values just written by the optimizer; fed that way, the
engine's rollouts are the ones the policy itself would sample, so the run's metrics equal an HF-backend run.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import polyglot_llama.rlhf.ppo as ppo
from polyglot_test_utils import sample_texts
from polyglot_llama.config import from_dict
from polyglot_llama.io import write_jsonl
from polyglot_llama.model.checkpoint import load_causal_lm
from polyglot_llama.rlhf.generation import generate

STEPS = 3


class EngineDouble:
    """A stand-in for `generation.VLLMEngine`: its own model read from the checkpoint directory, sampling
    from it, and a record of every ``load_weights`` call (one {name: tensor} per call)."""

    def __init__(self, model_dir: str, tokenizer):
        self.model = load_causal_lm(model_dir).eval()
        self.tokenizer = tokenizer
        self.received: list[dict[str, torch.Tensor]] = []
        self.rollouts = 0

    def generate(self, prompts, sampling, seeds):
        self.rollouts += 1
        return generate(self.model, self.tokenizer, prompts, sampling, seeds, progress=False)

    def load_weights(self, weights) -> None:
        got = {name: tensor.detach().clone() for name, tensor in weights}
        self.received.append(got)
        self.model.load_state_dict(got, strict=True)  # an unknown or missing name fails, as in vLLM's loader


def config(model_dir, output, prompts):
    return from_dict(ppo.PPOConfig, {
        "model": str(model_dir), "output": str(output), "prompts": [str(prompts)], "eval_fraction": 0.0,
        "reward": {"kind": "target_script"}, "reward_shaping": "whiten", "value_model": "separate",
        "sampling": {"temperature": 1.0, "max_new_tokens": 5, "batch_size": 8, "backend": "hf"},
        "steps": STEPS, "batch_size": 8, "mini_batch_size": 4, "micro_batch_size": 4, "kl_beta": 0.05,
        "optim": {"lr": 1e-2}, "eval_every": 0, "save_every": 1, "keep_checkpoints": STEPS, "missing_eos_penalty": 0.0,
    })


def test_policy_weights_reach_the_engine_after_every_update(tmp_path, multi_model_dir, monkeypatch):
    records = [{"id": f"{lang}-{i}", "lang": lang, "prompt": text[:10 + i]}
               for lang in ("ko", "zh") for i, text in enumerate(sample_texts(lang)[:4])]
    write_jsonl(tmp_path / "prompts.jsonl", records)
    ppo.run(config(multi_model_dir, tmp_path / "hf", tmp_path / "prompts.jsonl"))

    engines: list[EngineDouble] = []

    def make_engine(cfg, tokenizer, runtime):
        engines.append(EngineDouble(cfg.model, tokenizer))
        return engines[-1]

    monkeypatch.setattr(ppo, "rollout_engine", make_engine)
    ppo.run(config(multi_model_dir, tmp_path / "engine", tmp_path / "prompts.jsonl"))
    (engine,) = engines
    assert engine.rollouts == STEPS and len(engine.received) == STEPS  # one push after each of the 3 updates

    start = load_file(multi_model_dir / "model.safetensors")
    for step, pushed in enumerate(engine.received, start=1):
        saved = load_file(tmp_path / "engine" / "checkpoints" / f"step_{step:08d}" / "model.safetensors")
        policy = {k[len("policy."):]: v for k, v in saved.items() if k.startswith("policy.")}
        assert sorted(pushed) == sorted(policy) == sorted(start)  # the checkpoint's names, nothing of the critic
        for name, tensor in pushed.items():
            assert tensor.shape == start[name].shape, name
            assert torch.equal(tensor, policy[name]), (step, name)  # the weights right after this update
        assert max(float((pushed[k] - start[k]).abs().max()) for k in start) > 1e-3  # they did move

    # Rollouts from the engine equal rollouts from the policy itself at every step.
    metrics = [[json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
               for run in ("hf", "engine")]
    assert metrics[1][-1]["weight_sync_s"] >= 0 and "weight_sync_s" not in metrics[0][-1]
    for a, b in zip(*metrics):
        for key in ("reward", "kl", "response_length", "policy_loss", "value_loss", "entropy"):
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-7), (a["step"], key)
    assert metrics[0][-1]["kl"] != 0.0  # the policy moved: stale engine weights would show in the rollouts
