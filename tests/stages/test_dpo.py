"""`polyglot-llama dpo` end to end on a tiny model: the policy learns to answer in the prompt's language.

Pairs as in test_reward: prompt and chosen answer are random 20-character windows of one language's
sample paragraphs, the rejected answer a window of another language; held-out pairs come from paragraphs
never seen in training. The implicit reward β·log π/π_ref must rank them in each language.
"""

import json
import random

import pytest
from safetensors.torch import load_file

from polyglot_llama.cli import resolve
from polyglot_llama.train import checkpointing
from polyglot_llama.train.dpo import DPOConfig, DPODataConfig, LoraOptions, run
from polyglot_llama.train.loop import LoopConfig, OptimConfig, ScheduleConfig

from polyglot_test_utils import language_match_pairs, write_jsonl

LANGS = ["en", "ko", "zh"]
WINDOW = 20  # characters
STRENGTHS = ("significantly_better", "better", "slightly_better", "negligibly_better")


def synthetic_pairs(split: str, per_lang: int, rng: random.Random) -> list[dict]:
    return language_match_pairs(split, per_lang, rng, LANGS, WINDOW, STRENGTHS)


def _config(model_dir, output, train_file, validation_file, **kw) -> DPOConfig:
    defaults = dict(beta=0.5, batch_size=0,
                    data=DPODataConfig(train=[train_file], validation=[validation_file], max_length=128),
                    loop=LoopConfig(max_steps=kw.pop("steps", 50), micro_batch_size=kw.pop("micro", 16), grad_accum=1, log_every=1, resume=True,
                                    save_every=kw.pop("save_every", 0)),
                    optim=OptimConfig(lr=2e-3, weight_decay=0.0),
                    schedule=ScheduleConfig(kind="constant", warmup_steps=5))
    defaults.update(kw)
    return DPOConfig(model=str(model_dir), output=str(output), **defaults)


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory):
    rng = random.Random(0)
    root = tmp_path_factory.mktemp("dpo_pairs")
    bad = [{"prompt": "q", "chosen": "same", "rejected": "same"}, {"prompt": "q", "chosen": "only one"}]
    return (write_jsonl(root / "train.jsonl", synthetic_pairs("train", 700, rng) + bad),
            write_jsonl(root / "validation.jsonl", synthetic_pairs("validation", 50, rng)))


def test_dpo_learns_language_match(multi_model_dir, tmp_path, pair_files):
    train_file, validation_file = pair_files
    output = tmp_path / "dpo"
    summary = run(_config(multi_model_dir, output, train_file, validation_file))

    per_language = summary["validation"]["language"]
    print("held-out reward accuracy per language:", {lang: round(v["accuracy"], 3) for lang, v in per_language.items()},
          "before:", {lang: round(v["accuracy"], 3) for lang, v in summary["validation_before"]["language"].items()})
    assert sorted(per_language) == LANGS
    for lang, stats in per_language.items():
        assert stats["pairs"] == 50 and stats["accuracy"] >= 0.9, (lang, stats)
    assert summary["rejected"]["by_reason"] == {"identical chosen and rejected": 1, "missing field 'rejected'": 1}
    assert len((output / "rejected_pairs.jsonl").read_text().splitlines()) == 2
    results = json.loads((output / "dpo_results.json").read_text())
    assert results["after"]["language"] == per_language
    # Policy == reference at the start: every implicit reward is exactly 0, so no pair is ranked right yet.
    assert results["before"]["overall"]["margin"] == 0 and results["before"]["overall"]["accuracy"] == 0
    assert results["kl_to_reference"]["overall"] > 0 and sorted(results["kl_to_reference"]["language"]) == LANGS
    assert sorted(results["after"]["strength"]) == ["better", "negligibly_better", "significantly_better", "slightly_better"]
    lines = [json.loads(line) for line in (output / "training" / "metrics.jsonl").read_text().splitlines()]
    history = [r for r in lines if "loss" in r]
    assert [r["step"] for r in history] == list(range(1, 51)) and lines[-1]["preference_eval"]["language"] == per_language
    assert history[0]["loss"] == pytest.approx(0.693147, abs=1e-5)  # log 2: policy == reference at the first step
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert history[-1]["reward_margin"] > 0 and "chosen_logp" in history[-1] and "rejected_logp" in history[-1]
    assert (output / "model.safetensors").is_file() and (output / "reference_logps.safetensors").is_file()


class _Killed(Exception):
    pass


def test_killed_run_resumes_exactly_without_a_second_reference_pass(multi_model_dir, tmp_path, pair_files, monkeypatch):
    train_file = write_jsonl(tmp_path / "small.jsonl", [json.loads(l) for l in open(pair_files[0], encoding="utf-8")][:160])
    validation_file = write_jsonl(tmp_path / "small_val.jsonl", [json.loads(l) for l in open(pair_files[1], encoding="utf-8")][:30])
    common = dict(steps=8, save_every=4, micro=4, loss="odpo", label_smoothing=0.1)
    full = run(_config(multi_model_dir, tmp_path / "full", train_file, validation_file, **common))

    real_save = checkpointing.save

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        raise _Killed  # the process dies right after writing the step-4 checkpoint

    monkeypatch.setattr(checkpointing, "save", save_then_die)
    with pytest.raises(_Killed):
        run(_config(multi_model_dir, tmp_path / "resumed", train_file, validation_file, **common))
    monkeypatch.setattr(checkpointing, "save", real_save)
    cache = tmp_path / "resumed" / "reference_logps.safetensors"
    written = cache.stat().st_mtime_ns
    resumed = run(_config(multi_model_dir, tmp_path / "resumed", train_file, validation_file, **common))
    assert cache.stat().st_mtime_ns == written  # the reference was not run again

    def losses(run_dir):
        lines = [json.loads(l) for l in (run_dir / "training" / "metrics.jsonl").read_text().splitlines()]
        return {r["step"]: r["loss"] for r in lines if "loss" in r}

    full_losses, resumed_losses = losses(tmp_path / "full"), losses(tmp_path / "resumed")
    assert sorted(resumed_losses) == list(range(1, 9))
    for step in range(1, 9):
        assert resumed_losses[step] == pytest.approx(full_losses[step], abs=1e-6), step
    assert resumed["validation"]["overall"]["margin"] == pytest.approx(full["validation"]["overall"]["margin"], abs=1e-6)


def test_cli_flags_build_the_config(tmp_path):
    cfg, run_fn = resolve("dpo", ["--model", "m", "--output", str(tmp_path), "--loss", "odpo", "--offset-table", "large",
                                  "--offset-scale", "0.5", "--data.train", "a.jsonl", "--lora.r", "8", "--set", "beta=0.2"])
    assert run_fn is run and cfg.loss == "odpo" and cfg.offset_table == "large" and cfg.offset_scale == 0.5
    assert cfg.data.train == ["a.jsonl"] and cfg.lora.r == 8 and cfg.beta == 0.2
    # The DPO paper's defaults (Rafailov et al. 2023, App. B): β 0.1, lr 1e-6, 150 warm-up steps, 64 pairs per step.
    default, _ = resolve("dpo", ["--model", "m", "--output", str(tmp_path), "--data.train", "a.jsonl"])
    assert (default.beta, default.optim.lr, default.schedule.warmup_steps, default.batch_size) == (0.1, 1e-6, 150, 64)


def test_lora_trains_adapters_only_and_saves_a_merged_model(multi_model_dir, tmp_path, pair_files):
    train_file = write_jsonl(tmp_path / "small.jsonl", [json.loads(l) for l in open(pair_files[0], encoding="utf-8")][:64])
    validation_file = write_jsonl(tmp_path / "small_val.jsonl", [json.loads(l) for l in open(pair_files[1], encoding="utf-8")][:12])
    output = tmp_path / "lora"
    summary = run(_config(multi_model_dir, output, train_file, validation_file, steps=4, micro=8, lora=LoraOptions(r=4, dropout=0.0)))
    assert summary["steps"] == 4
    base, merged = load_file(multi_model_dir / "model.safetensors"), load_file(output / "model.safetensors")
    assert sorted(merged) == sorted(base)  # a plain Llama directory: no adapter keys left
    q_proj = "model.layers.0.self_attn.q_proj.weight"
    assert (merged[q_proj] - base[q_proj]).abs().max() > 1e-6  # the merged adapter changed the attention
    for name in ("model.embed_tokens.weight", "model.layers.0.mlp.up_proj.weight"):
        assert (merged[name] == base[name]).all(), name  # untouched: only adapters were trained
