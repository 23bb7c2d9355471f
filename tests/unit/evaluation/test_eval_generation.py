"""Generation tasks: few-shot prompts, per-language scoring and empty answers (answers scripted)."""

import pytest
from eval_helpers import ScriptedCheckpoint, ScriptedLM, write_jsonl

from polyglot_llama.evaluation.data import DataSpec
from polyglot_llama.evaluation.generation import GenerationTask
from polyglot_llama.io import RejectCounter

ROWS = [
    {"lang": "en", "prompt": "Capital of France?", "answer": "Paris"},
    {"lang": "en", "prompt": "Capital of Japan?", "answer": ["Tokyo", "Tōkyō"]},
    {"lang": "en", "prompt": "Capital of Egypt?", "answer": "Cairo"},
    {"lang": "ko", "prompt": "프랑스의 수도는?", "answer": "파리"},
    {"lang": "ko", "prompt": "일본의 수도는?", "answer": "도쿄"},
]


def test_generation_scores_per_language_and_counts_empty_answers(tmp_path):
    data = write_jsonl(tmp_path / "gen.jsonl", ROWS)
    task = GenerationTask(name="capitals", data=DataSpec(files=[str(data)]), metrics=["exact_match", "chrf"])
    task.resolve(tmp_path)
    lm = ScriptedLM({"Japan": "tokyo.", "Egypt": "Kairo", "프랑스": "파리", "일본": ""})
    rejects = RejectCounter()
    result = task.evaluate(ScriptedCheckpoint(lm), rejects)
    en, ko = result["languages"]["en"], result["languages"]["ko"]
    assert en["exact_match"] == pytest.approx(1 / 3)  # "" vs Paris (no scripted answer), tokyo. ok, Kairo wrong
    assert ko["exact_match"] == pytest.approx(1 / 2)
    assert (en["n"], ko["n"], ko["empty_answers"]) == (3, 2, 1)
    assert 0 < en["chrf"] < 100
    assert rejects.by_reason() == {"empty answer": 2}
    assert task.PRIMARY == "exact_match"
    assert {p["answer"] for p in result["predictions"]} >= {"tokyo.", "파리"}


def test_fewshot_demonstrations_come_from_the_same_language_and_are_not_scored(tmp_path):
    data = write_jsonl(tmp_path / "gen.jsonl", ROWS)
    task = GenerationTask(name="c", data=DataSpec(files=[str(data)]), prompt="Q: {prompt}\nA:", fewshot=1,
                          metrics=["exact_match"])
    task.resolve(tmp_path)
    lm = ScriptedLM({})
    result = task.evaluate(ScriptedCheckpoint(lm), RejectCounter())
    assert result["languages"]["en"]["n"] == 2 and result["languages"]["ko"]["n"] == 1
    assert lm.prompts[0] == "Q: Capital of France?\nA: Paris\n\nQ: Capital of Japan?\nA:"
    assert lm.prompts[-1] == "Q: 프랑스의 수도는?\nA: 파리\n\nQ: 일본의 수도는?\nA:"


def test_limit_counts_scored_examples_not_demonstrations(tmp_path):
    data = write_jsonl(tmp_path / "gen.jsonl", ROWS)
    task = GenerationTask(name="c", data=DataSpec(files=[str(data)], limit=1), prompt="Q: {prompt}\nA:", fewshot=1,
                          metrics=["exact_match"])
    task.resolve(tmp_path)
    lm = ScriptedLM({})
    result = task.evaluate(ScriptedCheckpoint(lm), RejectCounter())
    assert result["languages"]["en"]["n"] == 1 and result["languages"]["ko"]["n"] == 1
    assert lm.prompts == ["Q: Capital of France?\nA: Paris\n\nQ: Capital of Japan?\nA:",
                          "Q: 프랑스의 수도는?\nA: 파리\n\nQ: 일본의 수도는?\nA:"]
