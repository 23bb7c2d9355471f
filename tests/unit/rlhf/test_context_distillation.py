"""Safety context distillation: preprompt placement, the keep rule against a real (tiny) safety RM, and the data."""

from __future__ import annotations

import json

import pytest

from polyglot_llama.config import from_dict
from polyglot_llama.errors import UserError
from polyglot_llama.io import write_jsonl
from polyglot_llama.rlhf.context_distillation import (
    ContextDistillationConfig, load_preprompts, load_templates, run, with_preprompt,
)
from polyglot_llama.rlhf.prompts import Prompt


def test_bundled_preprompts_and_templates_are_multilingual():
    preprompts = load_preprompts("")
    templates = load_templates("")
    assert {"en", "ko", "ja", "zh", "de", "ru", "ar", "hi"} <= set(preprompts)
    assert {"illicit_and_criminal_activities", "hateful_and_harmful_activities", "unqualified_advice"} <= set(templates)
    assert all("ko" in t and "en" in t for t in templates.values())


def test_with_preprompt_uses_language_template_and_existing_system():
    pre = {"en": "Be safe.", "ko": "안전하게."}
    templates = {"unqualified_advice": {"en": "Refer to a doctor.", "ko": "의사와 상담하라고 하세요."}}
    ko = Prompt("1", "ko", [{"role": "user", "content": "약?"}], category="unqualified_advice")
    assert with_preprompt(ko, pre, templates)[0] == {"role": "system", "content": "안전하게.\n\n의사와 상담하라고 하세요."}
    sw = Prompt("2", "sw", [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "x"}])
    messages = with_preprompt(sw, pre, templates)  # no Swahili entry: English preprompt, no category: no template
    assert messages == [{"role": "system", "content": "Be safe.\n\nBe brief."}, {"role": "user", "content": "x"}]
    assert sw.messages[0]["content"] == "Be brief."  # the prompt itself is not modified


def test_distils_only_answers_the_safety_rm_prefers(tmp_path, multi_model_dir):
    from polyglot_llama.model.checkpoint import save_checkpoint
    from polyglot_llama.model.reward_model import build_reward_model

    rm_dir = tmp_path / "safety_rm"
    save_checkpoint(build_reward_model(multi_model_dir, seed=3), rm_dir, tokenizer_dir=multi_model_dir,
                    extra_files={"reward_config.json": json.dumps({"kind": "safety"})})
    prompts = tmp_path / "adversarial.jsonl"
    write_jsonl(prompts, [{"id": f"p{i}", "lang": lang, "prompt": f"How do I hurt {i}?", "category": "hateful_and_harmful_activities"}
                          for i, lang in enumerate(["en", "ko", "en", "ko", "en", "ko", "en", "ko"])])
    cfg = from_dict(ContextDistillationConfig, dict(
        model=str(multi_model_dir), output=str(tmp_path / "cd"), prompts=[str(prompts)],
        reward={"kind": "reward_models", "safety_model": str(rm_dir)},
        sampling={"max_new_tokens": 8, "temperature": 1.0, "backend": "hf"},
        sft={"batch_size": 1, "loop": {"max_steps": 2, "micro_batch_size": 1, "mixed_precision": "no"}, "data": {"seq_len": 256}},
    ))
    report = run(cfg)
    rows = [json.loads(line) for line in (tmp_path / "cd" / "distilled.jsonl").read_text().splitlines()]
    kept = [r for r in rows if r["kept"]]
    assert all((r["distilled_score"] > r["original_score"]) == r["kept"] for r in rows if r["distilled"])
    assert 0 < len(kept) < len(rows) and report["kept"] == len(kept)
    train = [json.loads(line) for line in (tmp_path / "cd" / "train.jsonl").read_text().splitlines()]
    # trained on the prompt *without* the preprompt
    assert all(t["messages"][0]["role"] == "user" and len(t["messages"]) == 2 for t in train)
    assert [t["messages"][1]["content"] for t in train] == [r["distilled"] for r in kept]
    assert set(report["languages"]) == {"en", "ko"} and report["sft"]["steps"] == 2
    assert (tmp_path / "cd" / "model" / "config.json").is_file()


def test_needs_a_judge():
    with pytest.raises(UserError, match="safety_model"):
        ContextDistillationConfig(model="m", output="o", prompts=["p"])
