"""PPO and rejection sampling give the same result with 2 processes as with 1 at the same global batch.

Both runs go through torchrun on CPUs (gloo; ACCELERATE_USE_CPU=true): 2 PPO steps (policy and critic
under DDP, rollouts split over the ranks and gathered) and one rejection-sampling round (jobs split
over the ranks). Rewards, KL, losses, the policy weights after the steps and every sampled answer and
reward must match."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from polyglot_test_utils import sample_texts
from polyglot_llama.io import write_jsonl

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("rlhf_ranks_worker.py")


def launch(nproc: int, out: Path, model: Path, prompts: Path) -> None:
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", str(WORKER),
           str(out), str(model), str(prompts)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_processes_equal_one(tmp_path, multi_model_dir):
    records = [{"id": f"{lang}-{i}", "lang": lang, "prompt": text[:10 + i]}
               for lang in ("ko", "zh") for i, text in enumerate(sample_texts(lang)[:6])]
    write_jsonl(tmp_path / "prompts.jsonl", records)
    for n in (1, 2):
        launch(n, tmp_path / f"p{n}", multi_model_dir, tmp_path / "prompts.jsonl")
    one, two = tmp_path / "p1", tmp_path / "p2"

    steps = [[json.loads(line) for line in (run / "ppo" / "metrics.jsonl").read_text().splitlines()] for run in (one, two)]
    assert len(steps[0]) == len(steps[1]) == 2
    assert steps[1][1]["kl"] != 0.0  # the second step sees a policy that moved away from the reference
    for a, b in zip(*steps):
        for key in ("reward", "kl", "response_length", "cut_off", "policy_loss", "value_loss", "approx_kl", "entropy", "grad_norm"):
            assert b[key] == pytest.approx(a[key], rel=1e-3, abs=1e-5), key
    weights = [load_file(run / "ppo" / "model" / "model.safetensors") for run in (one, two)]
    start = load_file(multi_model_dir / "model.safetensors")
    moved = max(float((weights[0][k] - start[k]).abs().max()) for k in start)
    diff = max(float((weights[0][k] - weights[1][k]).abs().max()) for k in start)
    assert moved > 1e-3 and diff < 1e-3 * moved, (moved, diff)
    assert json.loads((two / "ppo" / "summary.json").read_text())["processes"] == 2

    samples = [[json.loads(line) for line in (run / "rs" / "samples.jsonl").read_text().splitlines()] for run in (one, two)]
    assert samples[0] == samples[1] and len(samples[0]) == 12
    reports = [json.loads((run / "rs" / "report.json").read_text()) for run in (one, two)]
    assert reports[0]["all"] == reports[1]["all"] and reports[1]["processes"] == 2
