"""`dpo` on the real SmolLM2-135M-Instruct (ChatML template, tied embeddings): issue 18 on a real checkpoint.

Four bundled translation pairs (eval/data/reward_pairs.jsonl, all rated significantly better) train for two
one-pair-batch-of-2 steps with ODPO; two held-out pairs are scored before and after. Short rows (≤ 128
tokens) keep the module near a minute on two CPU threads. docs/dpo.md has a longer CLI run's figures.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from polyglot_llama.chat import resolve_template
from polyglot_llama.io import RejectCounter
from polyglot_llama.model.checkpoint import load_causal_lm, load_tokenizer
from polyglot_llama.train import dpo, dpo_data
from polyglot_llama.train.dpo import DPOConfig, DPODataConfig
from polyglot_llama.train.loop import LoopConfig, OptimConfig, ScheduleConfig
from polyglot_llama.train.reward_data import load_pairs

PAIRS = Path(__file__).resolve().parents[2] / "eval" / "data" / "reward_pairs.jsonl"


def _write(path: Path, records: list[dict]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def dpo_run(smollm2_dir, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("smollm2_dpo")
    rows = [json.loads(line) for line in PAIRS.read_text(encoding="utf-8").splitlines()]
    first = {}
    for row in rows:
        if row["strength"] == "significantly_better":
            first.setdefault(row["lang"], []).append(row)
    train = [first[lang][0] for lang in ("en", "ko", "de", "ja")]
    validation = [first["zh"][0], first["en"][1]]
    cfg = DPOConfig(model=str(smollm2_dir), output=str(work / "dpo"), loss="odpo", batch_size=0, eval_batch_size=4,
                    data=DPODataConfig(train=[_write(work / "train.jsonl", train)],
                                       validation=[_write(work / "validation.jsonl", validation)], max_length=128),
                    loop=LoopConfig(max_steps=2, micro_batch_size=2, grad_accum=1, log_every=1, save_every=0),
                    optim=OptimConfig(lr=1e-5, weight_decay=0.0), schedule=ScheduleConfig(kind="constant", warmup_steps=0))
    summary = dpo.run(cfg)
    return {"cfg": cfg, "summary": summary, "output": work / "dpo"}


def _encoded(cfg: DPOConfig, tokenizer) -> list[dict]:
    """The run's rows re-encoded as `dpo.run` encodes them: training pairs, then held-out ones."""
    template = resolve_template("", tokenizer, cfg.model)
    pairs = load_pairs(cfg.data.train, RejectCounter(), "train", cfg.data.default_lang) + \
        load_pairs(cfg.data.validation, RejectCounter(), "validation", cfg.data.default_lang)
    return dpo_data.encode_pairs(pairs, tokenizer, template, cfg.data.max_length, cfg.offset_table, RejectCounter())


def test_rows_are_chatml_and_only_the_answer_is_scored(dpo_run, smollm2_dir):
    tokenizer = load_tokenizer(smollm2_dir)
    example = _encoded(dpo_run["cfg"], tokenizer)[0]
    text = tokenizer.decode(example["chosen_ids"])
    assert "<|im_start|>user\nTranslate into English: Guten Morgen.<|im_end|>\n<|im_start|>assistant\nGood morning.<|im_end|>" in text
    scored = [i for i, label in zip(example["chosen_ids"], example["chosen_labels"]) if label != -100]
    assert tokenizer.decode(scored) == "Good morning.<|im_end|>"
    scored = [i for i, label in zip(example["rejected_ids"], example["rejected_labels"]) if label != -100]
    assert tokenizer.decode(scored) == "Guten Morgen.<|im_end|>"
    assert "<|im_start|>assistant" in (dpo_run["output"] / "chat_template.jinja").read_text()  # saved with the model


def test_first_step_loss_is_the_odpo_value_at_policy_equal_reference(dpo_run):
    lines = [json.loads(line) for line in (dpo_run["output"] / "training" / "metrics.jsonl").read_text().splitlines()]
    history = [r for r in lines if "loss" in r]
    assert [r["step"] for r in history] == [1, 2]
    # Policy == reference: every log-ratio is 0, so the loss is −log σ(0 − Δ) with Δ = 1 (significantly
    # better, small table); log 2 + the offset's share: log(1 + e).
    assert history[0]["loss"] == pytest.approx(math.log(1 + math.e), abs=1e-4)
    assert history[0]["reward_margin"] == pytest.approx(0.0, abs=1e-4)
    assert history[1]["loss"] != pytest.approx(history[0]["loss"], abs=1e-4)  # the first step moved the policy
    results = json.loads((dpo_run["output"] / "dpo_results.json").read_text())
    assert results["before"]["overall"]["margin"] == 0 and results["before"]["overall"]["accuracy"] == 0
    assert sorted(results["after"]["language"]) == ["en", "zh"] and results["kl_to_reference"]["overall"] > 0


def test_reference_cache_is_reused_and_holds_the_real_log_probs(dpo_run, smollm2_dir, monkeypatch):
    cfg, output = dpo_run["cfg"], dpo_run["output"]
    tokenizer = load_tokenizer(smollm2_dir)
    examples = _encoded(cfg, tokenizer)
    cache = output / dpo_data.REFERENCE_CACHE
    written = cache.stat().st_mtime_ns

    def no_model(*args, **kwargs):
        raise AssertionError("the reference model was loaded again")

    monkeypatch.setattr(dpo, "load_causal_lm", no_model)
    dpo.reference_pass(cfg, examples, tokenizer.pad_token_id, cache)
    assert cache.stat().st_mtime_ns == written
    # Hand check of the first pair: summed log p of the scored tokens under the real model, one unpadded pass.
    model = load_causal_lm(smollm2_dir).eval()
    ids, labels = examples[0]["chosen_ids"], examples[0]["chosen_labels"]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), -1)
    expected = sum(logp[t - 1, ids[t]].item() for t in range(1, len(ids)) if labels[t] != -100)
    assert examples[0]["ref_chosen"] == pytest.approx(expected, abs=2e-3)


def test_saved_model_keeps_tied_embeddings_as_one_tensor(dpo_run, smollm2_dir):
    output = dpo_run["output"]
    with safe_open(str(output / "model.safetensors"), framework="pt") as f:
        keys = set(f.keys())
        trained = f.get_tensor("model.embed_tokens.weight")
    assert "model.embed_tokens.weight" in keys and "lm_head.weight" not in keys
    assert json.loads((output / "config.json").read_text())["tie_word_embeddings"] is True
    model = load_causal_lm(output)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    with safe_open(str(smollm2_dir / "model.safetensors"), framework="pt") as f:
        assert not torch.equal(trained, f.get_tensor("model.embed_tokens.weight"))  # trained, not copied
