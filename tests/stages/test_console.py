"""The console of a stage run through the CLI: the stage's one progress bar and one summary line, nothing else.

Libraries' own bars (datasets' "Map"/"Filter"/"Saving the dataset", transformers' "Loading weights") and
their logging belong in the run's log file; under torchrun only the main process prints the summary.
Each run is a fresh `python -m polyglot_llama.cli` process, as a user runs it: the libraries are imported
lazily there, after the CLI has set up logging.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "polyglot_llama" / "resources" / "sample_text"
REWARD_PAIRS = ROOT / "eval" / "data" / "reward_pairs.jsonl"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def console(stderr: str) -> tuple[set[str], list[str]]:
    """(descriptions of the progress bars, every other line) on a captured stderr. A tqdm frame is a piece
    between carriage returns / newlines holding its elapsed-time field, e.g. ``train:  50%|██  | 1/2 [00:00<00:01, ...``."""
    bars, other = set(), []
    for frame in re.split(r"[\r\n]+", stderr):
        if not frame.strip():
            continue
        if re.search(r"\[\d+:\d+(?::\d+)?[<,\]]", frame):
            desc = re.match(r"\s*(.*?):\s+(?:\d+%\||[\d.]+\w* \[)", frame)
            bars.add(desc.group(1) if desc else "")
        else:
            other.append(frame)
    return bars, other


def test_console_parser_on_a_recorded_leak():
    recorded = ("Saving the dataset (0/1 shards):   0%|          | 0/155 [00:00<?, ? examples/s]\r"
                "Filter: 100%|██████████| 155/155 [00:00<00:00, 12906.32 examples/s]\n"
                "task 0/2: documents read: 0doc [00:00, ?doc/s]\r  0%|          | 0/1 [00:00<?, ?it/s]\n"
                "train:  50%|█████     | 1/2 [00:00<00:00,  1.50it/s, loss=6.2610]\nsome warning\n")
    assert console(recorded) == ({"Saving the dataset (0/1 shards)", "Filter", "task 0/2: documents read", "", "train"},
                                 ["some warning"])


def _cli(*argv: str, cwd: Path, launcher: tuple[str, ...] = (sys.executable,), **env: str) -> subprocess.CompletedProcess:
    done = subprocess.run([*launcher, "-m", "polyglot_llama.cli", *argv], cwd=cwd, env={**ENV, **env}, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _summary(stdout: str, output: Path) -> dict:
    lines = stdout.splitlines()
    assert len(lines) == 1, lines  # one summary line
    summary = json.loads(lines[0])
    assert summary["output"] == str(output)
    return summary


def _pretrain_args(model_dir: Path, output: Path) -> list[str]:
    return ["pretrain", "--model", str(model_dir), "--data.train", str(SAMPLE / "en.jsonl"), "--data.seq-len", "64",
            "--loop.max-steps", "2", "--loop.micro-batch-size", "2", "--schedule.warmup-steps", "1", "--output", str(output)]


def test_pretrain_console_is_its_train_bar_and_one_summary(en_model_dir, tmp_path):
    # pretrain packs its data with datasets (Map, Save, Filter bars) and loads weights with transformers.
    output = tmp_path / "run"
    done = _cli(*_pretrain_args(en_model_dir, output), cwd=tmp_path)
    assert console(done.stderr) == ({"train"}, [])
    assert _summary(done.stdout, output)["stages"][0]["steps"] == 2
    log = (output / "pretrain.log").read_text(encoding="utf-8")
    assert "transformers" in log  # transformers' detail went to the log file instead


@pytest.fixture(scope="module")
def reward_model_dir(tmp_path_factory, en_model_dir):
    from polyglot_llama.model.checkpoint import save_checkpoint
    from polyglot_llama.model.reward_model import build_reward_model

    out = tmp_path_factory.mktemp("console_rm") / "rm"
    save_checkpoint(build_reward_model(en_model_dir, seed=1), out, tokenizer_dir=en_model_dir)
    return out


def test_reward_eval_console_is_its_score_bar_and_one_summary(reward_model_dir, tmp_path):
    # reward eval loads a sequence-classification model (transformers' "Loading weights" bar) and scores pairs.
    output = tmp_path / "out"
    done = _cli("reward", "eval", "--model", str(reward_model_dir), "--data", str(REWARD_PAIRS), "--output", str(output),
                "--device", "cpu", "--batch-size", "32", cwd=tmp_path)
    assert console(done.stderr) == ({"score"}, [])
    _summary(done.stdout, output)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_print_one_summary_and_keep_one_shared_log(en_model_dir, tmp_path):
    output = tmp_path / "two"
    torchrun = (sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()))
    done = _cli(*_pretrain_args(en_model_dir, output), cwd=tmp_path, launcher=torchrun, ACCELERATE_USE_CPU="true")
    _summary(done.stdout, output)
    assert console(done.stderr)[0] == {"train"}
    assert sorted(p.name for p in output.glob("*.log")) == ["pretrain.log", "pretrain.rank1.log"]
