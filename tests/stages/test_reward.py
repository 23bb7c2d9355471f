"""`polyglot-llama reward` end to end on a tiny model: a synthetic multilingual preference is learned.

The preference: a response in the prompt's language beats one in another language. Prompts and responses
are random 20-character windows of the bundled sample paragraphs (held-out pairs come from paragraphs
never seen in training), so the reward model must compare the languages of prompt and response: neither
response language alone nor memorised sentences give the answer.
"""

import json
import random

import pytest

from polyglot_llama.cli import resolve
from polyglot_llama.model.reward_model import load_reward_model, read_reward_config, score
from polyglot_llama.train.loop import LoopConfig, OptimConfig, ScheduleConfig
from polyglot_llama.train.reward import RewardConfig, RewardDataConfig, run

from polyglot_test_utils import language_match_pairs, write_jsonl

LANGS = ["en", "ko", "zh"]
WINDOW = 20  # characters


def synthetic_pairs(split: str, per_lang: int, rng: random.Random) -> list[dict]:
    return language_match_pairs(split, per_lang, rng, LANGS, WINDOW)


@pytest.mark.slow
def test_reward_model_learns_language_match(multi_model_dir, tmp_path, one_thread):
    rng = random.Random(0)
    bad = [{"prompt": "q", "chosen": "same", "rejected": "same"}, {"prompt": "q", "chosen": "only one"}]
    train_file = write_jsonl(tmp_path / "train.jsonl", synthetic_pairs("train", 1070, rng) + bad)
    validation_file = write_jsonl(tmp_path / "validation.jsonl", synthetic_pairs("validation", 50, rng))
    output = tmp_path / "rm"
    cfg = RewardConfig(
        model=str(multi_model_dir), output=str(output), kind="helpfulness", margin="small",
        data=RewardDataConfig(train=[train_file], validation=[validation_file], max_length=128),
        loop=LoopConfig(max_steps=200, micro_batch_size=16, grad_accum=1, log_every=20, resume=False),
        optim=OptimConfig(lr=3e-3, weight_decay=0.0),
        schedule=ScheduleConfig(kind="cosine", warmup_ratio=0.03, min_warmup_steps=5, final_lr_ratio=0.1),
    )
    summary = run(cfg)

    per_language = summary["validation_accuracy"]["language"]
    print("held-out accuracy per language:", {lang: round(v["accuracy"], 3) for lang, v in per_language.items()})
    assert sorted(per_language) == LANGS
    for lang, stats in per_language.items():
        assert stats["pairs"] == 50 and stats["accuracy"] >= 0.9, (lang, stats)
    rejected = summary["rejected_pairs"]
    assert rejected["identical chosen and rejected"] == 1 and rejected["missing field 'rejected'"] == 1
    assert summary["training_pairs"]["pairs"] == 3 * 1070 - (sum(rejected.values()) - 2) and summary["steps"] == 200
    history = [json.loads(line) for line in (output / "training" / "metrics.jsonl").read_text().splitlines()]
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]

    # The saved directory is a reward model that scores the same preference through the public API.
    assert read_reward_config(output)["kind"] == "helpfulness"
    assert json.loads((output / "validation_accuracy.json").read_text())["language"] == per_language
    model, tokenizer = load_reward_model(output)
    held_out = [json.loads(line) for line in open(validation_file, encoding="utf-8")]
    prompts = [p["prompt"] for p in held_out]
    chosen = score(model, tokenizer, prompts, [p["chosen"] for p in held_out], batch_size=32)
    rejected = score(model, tokenizer, prompts, [p["rejected"] for p in held_out], batch_size=32)
    assert float((chosen > rejected).float().mean()) == pytest.approx(summary["validation_accuracy"]["overall"]["accuracy"])


def test_cli_flags_build_the_config(tmp_path):
    cfg, run_fn = resolve("reward", ["--model", "m", "--output", str(tmp_path), "--kind", "safety", "--margin", "large",
                                     "--data.train", "a.jsonl", "b.jsonl", "--data.is-safety", "--set",
                                     "data.mix=[{files: [helpful.jsonl], share: 0.1, name: helpfulness}]"])
    assert run_fn is run and cfg.kind == "safety" and cfg.margin == "large" and cfg.data.is_safety
    assert cfg.data.train == ["a.jsonl", "b.jsonl"] and cfg.data.mix[0].share == 0.1 and cfg.data.mix[0].name == "helpfulness"
    # The paper's defaults: one epoch, lr 1e-5, cosine to 10 %, warm-up 3 % (min 5), 512 pairs per step.
    assert (cfg.loop.epochs, cfg.optim.lr, cfg.schedule.final_lr_ratio) == (1.0, 1e-5, 0.1)
    assert (cfg.schedule.warmup_ratio, cfg.schedule.min_warmup_steps) == (0.03, 5)
    assert cfg.loop.global_batch_size == 512 and cfg.loop.micro_batch_size == 8
