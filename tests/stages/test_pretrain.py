"""End to end: `model init` + `pretrain` on the English sample, resume, two processes, bad input."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from polyglot_llama.config import load_config
from polyglot_llama.errors import UserError
from polyglot_llama.train import checkpointing, pretrain

SAMPLE = Path(__file__).resolve().parents[2] / "polyglot_llama" / "resources" / "sample_text"


def _config(model_dir, output, **overrides):
    values = {
        "model": str(model_dir), "output": str(output),
        "data.train": [str(SAMPLE / "en.jsonl")], "data.seq_len": 64, "data.validation_fraction": 0.1,
        "loop.micro_batch_size": 4, "loop.log_every": 1, "schedule.warmup_steps": 3, "optim.lr": 3e-3,
    }
    values.update(overrides)
    return load_config(pretrain.PretrainConfig, None, values)


def test_pretrain_loss_falls_and_output_loads(en_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    result = pretrain.run(_config(en_model_dir, tmp_path / "run", **{"loop.max_steps": 40}))
    before, after = result["perplexity_before"]["en"]["loss"], result["perplexity_after"]["en"]["loss"]
    assert after < before - 1.0, (before, after)  # untrained ≈ ln(512) = 6.24 nats
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "run")
    assert model.config.vocab_size == 512
    assert (tmp_path / "run" / "pretrain.config.yaml").is_file()
    assert "| en |" in (tmp_path / "run" / "forgetting.md").read_text()


class _Killed(Exception):
    pass


def test_killed_run_resumes_to_the_same_losses(en_model_dir, tmp_path, monkeypatch):
    overrides = {"loop.max_steps": 12, "loop.save_every": 6}
    full = pretrain.run(_config(en_model_dir, tmp_path / "full", **overrides))

    real_save = checkpointing.save

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        raise _Killed  # the process dies right after writing the step-6 checkpoint

    monkeypatch.setattr(checkpointing, "save", save_then_die)
    with pytest.raises(_Killed):
        pretrain.run(_config(en_model_dir, tmp_path / "resumed", **overrides))
    monkeypatch.setattr(checkpointing, "save", real_save)
    resumed = pretrain.run(_config(en_model_dir, tmp_path / "resumed", **overrides))

    def losses(run_dir):
        lines = (run_dir / "stages" / "0_all" / "metrics.jsonl").read_text().splitlines()
        return {json.loads(l)["step"]: json.loads(l)["loss"] for l in lines}

    full_losses, resumed_losses = losses(tmp_path / "full"), losses(tmp_path / "resumed")
    assert sorted(resumed_losses) == list(range(1, 13))
    for step in range(1, 13):
        assert resumed_losses[step] == pytest.approx(full_losses[step], abs=1e-6), step
    assert resumed["perplexity_after"]["en"]["loss"] == pytest.approx(full["perplexity_after"]["en"]["loss"], abs=1e-6)


def test_two_processes_reach_the_same_loss_as_one(en_model_dir, tmp_path):
    args = ["--model", str(en_model_dir), "--data.train", str(SAMPLE / "en.jsonl"), "--data.seq-len", "64",
            "--loop.max-steps", "4", "--loop.micro-batch-size", "2", "--loop.log-every", "1",
            "--schedule.warmup-steps", "2", "--optim.lr", "3e-3"]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "polyglot_llama.cli", "pretrain", *args, "--output", str(tmp_path / "one"),
                    "--loop.grad-accum", "2"], check=True, env=env, capture_output=True)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517"]
    subprocess.run([*torchrun, "-m", "polyglot_llama.cli", "pretrain", *args, "--output", str(tmp_path / "two"),
                    "--loop.grad-accum", "1"], check=True, env=env, capture_output=True)

    def losses(run_dir):
        return [json.loads(l)["loss"] for l in (run_dir / "stages" / "0_all" / "metrics.jsonl").read_text().splitlines()]

    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one) == len(two) == 4
    assert one == pytest.approx(two, abs=1e-4)
    assert one[-1] < one[0]


def test_bad_inputs_give_one_line_errors(en_model_dir, tmp_path):
    with pytest.raises(UserError, match="data.seq_len.*512 positions"):
        pretrain.run(_config(en_model_dir, tmp_path / "a", **{"data.seq_len": 4096}))
    with pytest.raises(UserError, match="matches no file"):
        pretrain.run(_config(en_model_dir, tmp_path / "b", **{"data.train": [str(tmp_path / "nope.jsonl")]}))
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"body": "no text field"}\n')
    with pytest.raises(UserError, match="no usable text"):
        pretrain.run(_config(en_model_dir, tmp_path / "c", **{"data.train": [str(empty)]}))
    not_llama = tmp_path / "gpt2"
    shutil.copytree(en_model_dir, not_llama)
    config = json.loads((not_llama / "config.json").read_text())
    (not_llama / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    with pytest.raises(UserError, match="weights do not fit config.json .model_type 'gpt2'.: .* missing"):
        pretrain.run(_config(not_llama, tmp_path / "d"))
    with pytest.raises(UserError, match="data.train"):
        load_config(pretrain.PretrainConfig, None, {"model": "m", "output": "o"})
