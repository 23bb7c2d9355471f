"""Multiple choice by log-likelihood: the argmax over hand-computed choice log-probabilities."""

import pytest
from eval_helpers import token_logprobs, write_jsonl

from polyglot_llama.evaluation.data import DataSpec
from polyglot_llama.evaluation.multiple_choice import MultipleChoiceTask
from polyglot_llama.io import RejectCounter

ITEMS = [
    {"lang": "en", "q": "Which of these is a fruit?", "choices": ["apple", "chair", "car"], "answer": 0},
    {"lang": "en", "q": "Which of these is an animal?", "choices": ["table", "dog"], "answer": "dog"},
    {"lang": "ko", "q": "다음 중 과일은 무엇입니까?", "choices": ["의자", "사과", "자동차", "신발"], "answer": 1},
    {"lang": "ko", "q": "missing answer", "choices": ["a", "b"]},
    {"lang": "de", "q": "Welches davon ist ein Tier?", "choices": ["Hund", "Tisch"], "answer": 5},
]


def _hand_scores(lm, prompt: str, choices: list[str]) -> list[float]:
    scores = []
    for choice in choices:
        ctx, cont = lm.split_continuation(prompt, " " + choice)
        scores.append(sum(token_logprobs(lm.model, ctx + cont)[len(ctx) - 1:]))
    return scores


def test_choice_by_loglikelihood_matches_hand_computation(tmp_path, tiny_checkpoint):
    data = write_jsonl(tmp_path / "mc.jsonl", ITEMS)
    task = MultipleChoiceTask(name="mc", data=DataSpec(files=[str(data)]), prompt="{q}\nAnswer:")
    rejects = RejectCounter()
    result = task.evaluate(tiny_checkpoint, rejects)["languages"]

    lm = tiny_checkpoint.language_model()
    expected = {}
    for item in ITEMS[:3]:
        answer = item["choices"].index(item["answer"]) if isinstance(item["answer"], str) else item["answer"]
        scores = _hand_scores(lm, f"{item['q']}\nAnswer:", item["choices"])
        normed = [s / len(c) for s, c in zip(scores, item["choices"])]
        right = scores.index(max(scores)) == answer
        right_norm = normed.index(max(normed)) == answer
        tally = expected.setdefault(item["lang"], [0, 0, 0, 0.0])
        tally[0] += right
        tally[1] += right_norm
        tally[2] += 1
        tally[3] += 1 / len(item["choices"])
    for lang, (right, right_norm, n, chance) in expected.items():
        assert result[lang]["accuracy"] == pytest.approx(right / n)
        assert result[lang]["accuracy_norm"] == pytest.approx(right_norm / n)
        assert result[lang]["chance"] == pytest.approx(chance / n)
        assert result[lang]["n"] == n
    assert "de" not in result
    assert rejects.by_reason() == {
        "missing column 'answer'": 1,
        "answer not among the choices": 1,
        "language 'de' has no examples": 1,
    }


def test_belebele_layout_choice_columns_and_one_based_answers(tmp_path, tiny_checkpoint):
    row = {"lang": "en", "passage": "Cats sleep a lot.", "question": "What do cats do?", "mc_answer1": "sleep",
           "mc_answer2": "fly", "correct_answer_num": "1"}
    data = write_jsonl(tmp_path / "belebele.jsonl", [row])
    task = MultipleChoiceTask(name="b", data=DataSpec(files=[str(data)]), prompt="{passage}\n{question}\nAnswer:",
                              choices=["mc_answer1", "mc_answer2"], answer_field="correct_answer_num", answer_base=1)
    result = task.evaluate(tiny_checkpoint, RejectCounter())["languages"]["en"]
    scores = _hand_scores(tiny_checkpoint.language_model(), "Cats sleep a lot.\nWhat do cats do?\nAnswer:", ["sleep", "fly"])
    assert result["accuracy"] == float(scores[0] > scores[1])
