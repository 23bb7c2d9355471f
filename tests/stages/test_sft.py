"""`polyglot-llama sft` end to end on a tiny model: it learns a synthetic instruction set (held-out prompts)."""

from __future__ import annotations

import json
import random

import pytest
import yaml

from polyglot_llama import cli
from polyglot_llama.chat import LLAMA2_CHAT_TEMPLATE, encode_prompt
from polyglot_llama.model.checkpoint import load_causal_lm, load_tokenizer
from polyglot_llama.rlhf.generation import SamplingConfig, generate

# Two instructions over the same words: the answer depends on both the instruction and the word.
WORDS = {"dog": ("woof", "Hund"), "cat": ("meow", "Katze"), "cow": ("moo", "Kuh"), "duck": ("quack", "Ente"),
         "owl": ("hoot", "Eule"), "bee": ("buzz", "Biene"), "frog": ("croak", "Frosch"), "lion": ("roar", "Loewe")}
OPENERS = ["", "Please. ", "Quick question. ", "Hello! ", "Tell me. ", "Now, ", "Thanks. ", "Hey. "]


def make_example(rng: random.Random) -> tuple[dict, str]:
    word, kind = rng.choice(sorted(WORDS)), rng.choice(["sound", "german"])
    opener = f"{rng.choice(OPENERS)}{rng.randrange(1000)} "  # a number makes held-out prompts new strings
    if kind == "sound":
        prompt, answer, lang = f"{opener}What sound does a {word} make?", WORDS[word][0], "en"
    else:
        prompt, answer, lang = f"{opener}Translate to German: {word}", WORDS[word][1], "de"
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}], "lang": lang}, answer


def answer_accuracy(model_dir, held_out) -> float:
    model, tokenizer = load_causal_lm(model_dir).eval(), load_tokenizer(model_dir)
    prompts = [encode_prompt(record["messages"][:1], tokenizer) for record, _ in held_out]
    outputs = generate(model, tokenizer, prompts, SamplingConfig(max_new_tokens=8, temperature=0.0, backend="hf"),
                       seeds=list(range(len(prompts))), progress=False)
    return sum(out.text == answer for out, (_, answer) in zip(outputs, held_out)) / len(held_out)


def test_sft_learns_instructions_and_reports_rejects(tmp_path, en_model_dir, one_thread):
    rng = random.Random(0)
    train = [make_example(rng)[0] for _ in range(240)]
    held_out = [make_example(rng) for _ in range(32)]
    held_out = [(r, a) for r, a in held_out if r["messages"][0]["content"] not in {t["messages"][0]["content"] for t in train}]
    bad = [{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
           {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": " "}]},
           {"prompt": "x", "response": "y", "lang": "not a language code!"}]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in train + bad), encoding="utf-8")
    config = tmp_path / "sft.yaml"
    config.write_text(yaml.safe_dump({
        "model": str(en_model_dir), "output": str(tmp_path / "out"), "batch_size": 0,
        "data": {"train": [str(data)], "seq_len": 256, "validation_fraction": 0.05},
        "loop": {"max_steps": 150, "micro_batch_size": 8, "log_every": 50},
        "optim": {"lr": 5e-3}, "schedule": {"warmup_steps": 5},
    }))

    assert cli.main(["sft", "--config", str(config)]) == 0
    summary = json.loads((tmp_path / "out" / "sft_summary.json").read_text())
    assert summary["rejected"]["by_reason"] == {"roles do not alternate": 1, "empty assistant turn": 1, "bad language code": 1}
    rejected = [json.loads(line) for line in (tmp_path / "out" / "rejected_records.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rejected] == [241, 242, 243]
    assert set(summary["eval"]) == {"en", "de"}  # per-language validation loss
    for lang in ("en", "de"):
        assert summary["eval"][lang]["loss"] < 0.3 * summary["eval_before"][lang]["loss"]
    assert summary["packing_fill"] > 0.7

    before, after = answer_accuracy(en_model_dir, held_out), answer_accuracy(tmp_path / "out", held_out)
    assert before <= 0.05
    assert after >= 0.75, f"held-out answer accuracy {after:.2f} (untrained {before:.2f})"
    # The output tokenizer carries the chat template, so apply_chat_template formats like our encoder.
    assert load_tokenizer(tmp_path / "out").chat_template == LLAMA2_CHAT_TEMPLATE


def test_sft_config_errors_name_the_key(tmp_path, en_model_dir):
    from polyglot_llama.config import from_dict
    from polyglot_llama.errors import UserError
    from polyglot_llama.train.sft import SFTConfig, resolve_grad_accum

    with pytest.raises(UserError, match="data.train"):
        from_dict(SFTConfig, {"model": "m", "output": "o"})
    cfg = from_dict(SFTConfig, {"model": "m", "output": "o", "data": {"train": ["x"]}})
    assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.loop.epochs, cfg.data.seq_len, cfg.schedule.kind) == (2e-5, 0.1, 2.0, 4096, "cosine")
    assert resolve_grad_accum(cfg, world_size=1) == 16 and resolve_grad_accum(cfg, world_size=4) == 4
    with pytest.raises(UserError, match="batch_size"):
        resolve_grad_accum(cfg, world_size=3)


def test_sft_unpacked_with_validation_files_and_the_tokenizers_template(tmp_path, en_model_dir, one_thread):
    import shutil

    from polyglot_llama.chat import install_chat_template
    from polyglot_llama.config import from_dict
    from polyglot_llama.errors import UserError
    from polyglot_llama.train.sft import SFTConfig, run

    model = tmp_path / "model"
    shutil.copytree(en_model_dir, model)
    install_chat_template(model)
    rng = random.Random(1)
    for name, n in (("train", 12), ("val", 4)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(make_example(rng)[0]) + "\n" for _ in range(n)))
    base = {"model": str(model), "output": str(tmp_path / "out"), "chat_template": "tokenizer", "batch_size": 4,
            "data": {"train": [str(tmp_path / "train.jsonl")], "validation": [str(tmp_path / "val.jsonl")],
                     "seq_len": 128, "packing": False},
            "loop": {"max_steps": 2, "micro_batch_size": 2}}
    summary = run(from_dict(SFTConfig, base))
    assert summary["rows"] == 12 and summary["grad_accum"] == 2  # one conversation per row; 4 = 2 × 2
    assert sum(summary["conversations"]["validation"].values()) == 4
    assert set(summary["eval"]) <= {"en", "de"} and summary["eval"]
    with pytest.raises(UserError, match="data.seq_len"):
        run(from_dict(SFTConfig, {**base, "data": {**base["data"], "seq_len": 100_000}}))


def test_sft_two_processes_match_one(tmp_path, en_model_dir):
    """torchrun with 2 processes: the same global batches as one process with twice the accumulation, and the
    per-language validation (one row per language, so one rank has no batch) does not hang."""
    import os
    import subprocess
    import sys

    rng = random.Random(2)
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(make_example(rng)[0]) + "\n" for _ in range(60)))
    args = ["--model", str(en_model_dir), "--data.train", str(data), "--data.seq-len", "256",
            "--data.validation-fraction", "0.1", "--batch-size", "4", "--loop.micro-batch-size", "2",
            "--loop.max-steps", "2", "--optim.lr", "3e-3", "--schedule.warmup-steps", "1"]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "polyglot_llama.cli", "sft", *args, "--output", str(tmp_path / "one")],
                   check=True, env=env, capture_output=True, timeout=300)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531"]
    subprocess.run([*torchrun, "-m", "polyglot_llama.cli", "sft", *args, "--output", str(tmp_path / "two")],
                   check=True, env=env, capture_output=True, timeout=300)
    one, two = (json.loads((tmp_path / name / "sft_summary.json").read_text()) for name in ("one", "two"))
    # Both runs stay inside the first epoch (the loop drops a different remainder per epoch for 1 and 2 ranks).
    assert one["rows"] == two["rows"] >= 8
    assert (one["grad_accum"], two["grad_accum"]) == (2, 1)
    assert abs(one["train_loss"] - two["train_loss"]) < 1e-4
    assert one["eval"].keys() == two["eval"].keys() == {"en", "de"}
    for lang in one["eval"]:
        assert one["eval"][lang]["tokens"] == two["eval"][lang]["tokens"]
        assert abs(one["eval"][lang]["loss"] - two["eval"][lang]["loss"]) < 1e-3
