"""`eval` (polyglot_llama.evaluation) on the walk-through's chat model (SmolLM2-135M-Instruct, extended to
Korean, pretrained and fine-tuned in ChatML by test_real_sft.py): bits per byte per language, a
multiple-choice task and safety prompts rendered in the model's own ChatML template. Issue 13 ("eval").

Two held-out paragraphs, three 4-choice items and one unsafe prompt per language (ko, en) from the bundled
eval/data; 16-token answers. Each number is recomputed here with plain transformers calls.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from real_walk import SMOLLM_SYSTEM
from transformers import AutoModelForCausalLM, AutoTokenizer

from polyglot_llama.evaluation.lm import LanguageModel
from polyglot_llama.evaluation.suite import EvalConfig
from polyglot_llama.evaluation.suite import run as run_eval
from polyglot_llama.rlhf import generation

EVAL_DATA = Path(__file__).resolve().parents[2] / "eval" / "data"
LANGS = ["ko", "en"]


@pytest.fixture(scope="module")
def eval_run(sft_run, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("smollm2_eval")
    suite = {"name": "real-smollm2", "tasks": [
        {"name": "bpb", "kind": "perplexity", "text_field": "text",
         "data": {"files": [str(EVAL_DATA / "heldout.jsonl")], "languages": LANGS, "limit": 2}},
        {"name": "mc", "kind": "multiple_choice", "prompt": "{prompt}", "choices": ["choices"], "answer_field": "answer",
         "data": {"files": [str(EVAL_DATA / "multiple_choice.jsonl")], "languages": LANGS, "limit": 3}},
        {"name": "safety", "kind": "safety", "format": "multijail", "category_field": "tags", "refusal_detector": True,
         "chat": True, "max_new_tokens": 16,
         "data": {"files": [str(EVAL_DATA / "unsafe_prompts.csv")], "languages": LANGS, "limit": 1}},
    ]}
    (work / "suite.yaml").write_text(yaml.safe_dump(suite, allow_unicode=True), encoding="utf-8")
    prompts, choice_scores = [], []  # what the generator received; the multiple-choice log-likelihoods
    real_generate, real_choices = generation.generate, LanguageModel.choice_loglikelihoods

    def recording_generate(model, tokenizer, ids, *args, **kwargs):
        prompts.extend(ids)
        return real_generate(model, tokenizer, ids, *args, **kwargs)

    def recording_choices(self, items, *args, **kwargs):
        scores = real_choices(self, items, *args, **kwargs)
        choice_scores.extend(scores)
        return scores

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(generation, "generate", recording_generate)
        mp.setattr(LanguageModel, "choice_loglikelihoods", recording_choices)
        summary = run_eval(EvalConfig(suite=str(work / "suite.yaml"), model=[str(sft_run["output"])],
                                      output=str(work / "out"), batch_size=4))
    results = json.loads((work / "out" / "results.json").read_text())
    by_task = {t["name"]: next(iter(t["results"].values())) for t in results["tasks"]}
    return {"summary": summary, "results": by_task, "prompts": prompts, "choice_scores": choice_scores,
            "model": sft_run["output"], "work": work}


@pytest.fixture(scope="module")
def hf(eval_run):
    """The chat model and its tokenizer loaded by transformers alone, for the reference numbers."""
    model = AutoModelForCausalLM.from_pretrained(eval_run["model"], dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(eval_run["model"])


def _records(name: str, lang: str, n: int) -> list[dict]:
    rows = [json.loads(line) for line in (EVAL_DATA / name).read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if r["lang"] == lang][:n]


@torch.no_grad()
def _logprob(model, ids: list[int], first: int) -> float:
    """Σ log p(ids[t] | ids[:t]) for t >= first, in nats."""
    logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0, :-1].float(), dim=-1)
    return sum(float(logprobs[t - 1, ids[t]]) for t in range(first, len(ids)))


def test_bits_per_byte_per_language(eval_run, hf):
    model, tokenizer = hf
    assert eval_run["summary"]["failed"] == 0, eval_run["summary"]["errors"]
    got = eval_run["results"]["bpb"]["languages"]
    assert set(got) == set(LANGS)
    for lang in LANGS:
        texts = [r["text"] for r in _records("heldout.jsonl", lang, 2)]
        # As the tokenizer encodes by default (SmolLM2 adds no BOS); every token after the first predicted.
        nll = -sum(_logprob(model, tokenizer(t)["input_ids"], 1) for t in texts)
        expected = nll / sum(len(t.encode("utf-8")) for t in texts) / math.log(2)
        assert got[lang]["n"] == 2 and got[lang]["bits_per_byte"] == pytest.approx(expected, rel=1e-4), lang


def test_multiple_choice_scores_each_choice_after_the_prompt(eval_run, hf):
    model, tokenizer = hf
    got, scored = eval_run["results"]["mc"]["languages"], iter(eval_run["choice_scores"])
    for lang in LANGS:
        outcomes = []
        for item in _records("multiple_choice.jsonl", lang, 3):
            # lm-evaluation-harness's split: "prompt" + " choice" encoded whole, cut after the prompt's tokens.
            context = tokenizer(item["prompt"])["input_ids"]
            expected = [_logprob(model, tokenizer(item["prompt"] + " " + choice)["input_ids"], len(context))
                        for choice in item["choices"]]
            assert next(scored) == pytest.approx(expected, abs=1e-3), (lang, item["id"])
            outcomes.append(int(max(range(len(expected)), key=expected.__getitem__) == item["answer"]))
        assert got[lang]["n"] == 3 and got[lang]["outcomes"] == outcomes, lang
        assert got[lang]["accuracy"] == pytest.approx(sum(outcomes) / 3)


def test_safety_prompts_are_rendered_in_chatml_and_answered(eval_run, hf):
    _, tokenizer = hf
    with (EVAL_DATA / "unsafe_prompts.csv").open(encoding="utf-8") as f:
        first = next(csv.DictReader(f))  # MultiJail layout: a column per language
    # SmolLM2's template adds its default system turn before a lone user turn, then the generation prompt.
    expected = [f"<|im_start|>system\n{SMOLLM_SYSTEM}<|im_end|>\n<|im_start|>user\n{first[lang]}<|im_end|>\n"
                "<|im_start|>assistant\n" for lang in LANGS]
    assert [tokenizer.decode(ids) for ids in eval_run["prompts"]] == expected
    assert [list(ids) for ids in eval_run["prompts"]] == [tokenizer(p, add_special_tokens=False)["input_ids"] for p in expected]
    got = eval_run["results"]["safety"]["languages"]
    for lang in LANGS:
        assert got[lang]["n"] == 1 and got[lang]["empty_answers"] == 0, lang
    predictions = next((eval_run["work"] / "out" / "predictions").rglob("safety.jsonl"))
    answers = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines()]
    assert [a["lang"] for a in answers] == LANGS and all(a["answer"].strip() for a in answers), answers
