"""The console of a stage run through the CLI: the stage's one progress bar and one summary line, nothing else.

Libraries' own bars (datasets' "Map"/"Filter"/"Saving the dataset", transformers' "Loading weights") and
their logging belong in the run's log file; under torchrun only the main process prints the summary.
Runs that check library routing are a fresh `python -m polyglot_llama.cli` process, as a user runs it: the
libraries are imported lazily there, after the CLI has set up logging. Stages with phases (a reference pass
then training, generation then fine-tuning, counting then writing, one eval task after another) show them on
one bar, one console line: those runs call `cli.main` in this process (the check is about our own bars, and
it saves the seconds of importing torch again).
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from polyglot_test_utils import language_match_pairs, sample_records, sample_texts, write_jsonl
from polyglot_llama.cli import main

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


def bar_lines(stderr: str) -> list[list[str]]:
    """Per console line that shows progress bars: the descriptions it shows in order (repeats merged), "?" for a
    bar without one, "" where a bar erased itself (tqdm's leave=False writes blanks over it). One bar per stage:
    one line, no ""."""
    lines = []
    for line in stderr.split("\n"):
        shown = []
        for frame in (f for f in line.split("\r") if f):
            if not frame.strip():
                desc = ""
            elif re.search(r"\[\d+:\d+(?::\d+)?[<,\]]", frame):
                found = re.match(r"\s*(.*?):\s+(?:\d+%\||[\d.]+\w* \[)", frame)
                desc = found.group(1) if found else "?"
            else:
                continue
            if not shown or shown[-1] != desc:
                shown.append(desc)
        if any(shown):
            lines.append(shown)
    return lines


def test_console_parser_on_a_recorded_leak():
    recorded = ("Saving the dataset (0/1 shards):   0%|          | 0/155 [00:00<?, ? examples/s]\r"
                "Filter: 100%|██████████| 155/155 [00:00<00:00, 12906.32 examples/s]\n"
                "task 0/2: documents read: 0doc [00:00, ?doc/s]\r  0%|          | 0/1 [00:00<?, ?it/s]\n"
                "train:  50%|█████     | 1/2 [00:00<00:00,  1.50it/s, loss=6.2610]\nsome warning\n")
    assert console(recorded) == ({"Saving the dataset (0/1 shards)", "Filter", "task 0/2: documents read", "", "train"},
                                 ["some warning"])
    assert bar_lines(recorded) == [["Saving the dataset (0/1 shards)", "Filter"], ["task 0/2: documents read", "?"],
                                   ["train"]]
    erased = "\rperplexity nll:   0%|   | 0/1 [00:00<?, ?batch/s]\r      \r\rgenerate:   0%|   | 0/2 [00:00<?, ?prompt/s]\r     \r"
    assert bar_lines(erased) == [["perplexity nll", "", "generate", ""]]


def _cli(*argv: str, cwd: Path, launcher: tuple[str, ...] = (sys.executable,), **env: str) -> subprocess.CompletedProcess:
    done = subprocess.run([*launcher, "-m", "polyglot_llama.cli", *argv], cwd=cwd, env={**ENV, **env}, capture_output=True,
                          timeout=240)
    # Decoded here, not with text=True: that turns tqdm's carriage returns into newlines (one line per frame).
    done.stdout, done.stderr = done.stdout.decode("utf-8"), done.stderr.decode("utf-8")
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


def test_corpus_build_console_is_the_read_bar_and_one_summary(tmp_path):
    # datatrove's exact dedup ("Initializing pq...", an unnamed bar over the duplicate files), minhash ("Reading
    # dup files") and its warnings ("No .remove file for rank=0") belong in the log; an exact copy makes them all run.
    raw = tmp_path / "raw"
    raw.mkdir()
    en = sample_records("en")[:4]
    write_jsonl(raw / "en.jsonl", en + [{"id": "en-copy", "text": en[0]["text"]}])
    output = tmp_path / "corpus"
    done = _cli("corpus", "build", "--input", str(raw / "*"), "--output", str(output), "--languages", "en", "--tasks", "1",
                "--workers", "1", cwd=tmp_path)
    assert console(done.stderr) == ({"task 0/1: documents read"}, [])
    assert bar_lines(done.stderr) == [["task 0/1: documents read"]]
    summary = _summary(done.stdout, output)
    assert (summary["documents_in"], summary["documents_kept"]) == (5, 4)
    log = (output / "corpus_build.log").read_text(encoding="utf-8")
    assert "Initializing pq" in log and "No .remove file" in log  # datatrove's detail went to the log file


def _run_in_process(capsys, *argv: str) -> tuple[str, str]:
    assert main(list(argv)) == 0, capsys.readouterr().err[-3000:]
    captured = capsys.readouterr()
    return captured.out, captured.err


def _prompts(path: Path) -> Path:
    write_jsonl(path, [{"id": f"{lang}-{i}", "lang": lang, "prompt": text[:16 + i]}
                       for lang in ("ko", "zh") for i, text in enumerate(sample_texts(lang)[:4])])
    return path


def test_ppo_critic_load_report_goes_to_the_log(en_model_dir, tmp_path, capsys):
    # The separate critic loads the trunk of a causal-LM checkpoint: transformers reports lm_head.weight as
    # UNEXPECTED in a multi-line "LlamaModel LOAD REPORT" warning, expected here, so log-file only.
    output = tmp_path / "ppo"
    out, err = _run_in_process(capsys, "ppo", "--model", str(en_model_dir), "--output", str(output), "--prompts",
                               str(_prompts(tmp_path / "prompts.jsonl")), "--reward.kind", "target_script",
                               "--value-model", "separate", "--sampling.max-new-tokens", "2", "--sampling.backend", "hf",
                               "--steps", "1", "--batch-size", "4", "--mini-batch-size", "4", "--micro-batch-size", "4",
                               "--eval-every", "0", "--missing-eos-penalty", "0")
    assert console(err) == ({"ppo"}, [])
    _summary(out, output / "model")
    assert "LlamaModel LOAD REPORT" in (output / "ppo.log").read_text(encoding="utf-8")


def _eval_suite(path: Path) -> Path:
    data = ROOT / "eval" / "data"
    path.write_text(f"""
name: console
tasks:
  - {{name: perplexity, kind: perplexity, data: {{files: ["{data}/heldout.jsonl"], languages: [en], limit: 2}}}}
  - {{name: capitals, kind: generation, prompt: "{{prompt}}", max_new_tokens: 2, metrics: [exact_match],
      data: {{files: ["{data}/capitals.jsonl"], languages: [en], limit: 2}}}}
""", encoding="utf-8")
    return path


PHASED_STAGES = {
    # stage: (argv after the stage name, {model} {tokenizer} {dir} filled in; the phases on the one bar line)
    "corpus mix": (["--tokenizer", "{tokenizer}", "--set", (f"sources=[{{name: en, lang: en, paths: ['{SAMPLE}/en.jsonl']}}, "
                                                           f"{{name: ko, lang: ko, paths: ['{SAMPLE}/ko.jsonl']}}]")],
                   ["count en", "count ko", "write en", "write ko"]),
    "dpo": (["--model", "{model}", "--data.train", "{dir}/pairs.jsonl", "--loop.max-steps", "2", "--loop.micro-batch-size", "4"],
            ["reference pass", "train"]),
    "rejection-sampling": (["--model", "{model}", "--prompts", "{dir}/prompts.jsonl", "--samples-per-prompt", "2",
                            "--sampling.max-new-tokens", "2", "--sampling.backend", "hf", "--reward.kind", "target_script",
                            "--set", "sft.loop.max_steps=1", "--set", "sft.loop.micro_batch_size=4", "--set", "sft.batch_size=4",
                            "--set", "sft.data.seq_len=128"],
                           ["generate", "train"]),
    "eval": (["--suite", "{dir}/suite.yaml", "--model", "{model}", "--device", "cpu", "--batch-size", "4"],
             ["perplexity nll", "generate"]),
}


@pytest.mark.parametrize("stage", list(PHASED_STAGES))
def test_phases_of_a_stage_share_one_bar(stage, en_model_dir, en_tokenizer_dir, tmp_path, capsys):
    write_jsonl(tmp_path / "pairs.jsonl", language_match_pairs("train", 8, random.Random(0), ["en", "ko"]))
    _prompts(tmp_path / "prompts.jsonl")
    _eval_suite(tmp_path / "suite.yaml")
    args, phases = PHASED_STAGES[stage]
    output = tmp_path / "out"
    fill = {"{model}": str(en_model_dir), "{tokenizer}": str(en_tokenizer_dir), "{dir}": str(tmp_path)}
    out, err = _run_in_process(capsys, *stage.split(), *(re.sub(r"\{\w+\}", lambda m: fill.get(m[0], m[0]), a) for a in args),
                               "--output", str(output))
    assert bar_lines(err) == [phases] and err.endswith("\n")  # the bar's line ends before the shell prompt
    assert console(err)[1] == []
    assert len(out.splitlines()) == 1 and json.loads(out)  # one summary line


def test_an_error_after_a_phase_gets_its_own_line(en_model_dir, tmp_path, capsys):
    # Generation runs, then fine-tuning refuses a seq_len beyond the model's 512 positions: the bar's line ends
    # before the one-line error, so the error starts a line of its own.
    args, _ = PHASED_STAGES["rejection-sampling"]
    argv = [a.replace("{model}", str(en_model_dir)).replace("{dir}", str(tmp_path)) for a in args]
    _prompts(tmp_path / "prompts.jsonl")
    assert main(["rejection-sampling", *argv, "--set", "sft.data.seq_len=4096", "--output", str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.split("\n")
    assert lines[-1] == "" and lines[-2].startswith("polyglot-llama rejection-sampling: error: key 'data.seq_len' is 4096")
    assert bar_lines("\n".join(lines[:-2])) == [["generate"]]
