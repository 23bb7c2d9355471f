"""Eval's chat prompts (generation and safety tasks) use the model's own chat template or the task's
``chat_template``, checked when the suite is read."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from chat_families import build_tokenizer, template

from polyglot_llama.errors import UserError
from polyglot_llama.evaluation.tasks import parse_task

CHATML_PROMPT = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
                 "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")


@pytest.fixture(scope="module")
def chatml(tmp_path_factory):
    return build_tokenizer("chatml", tmp_path_factory.mktemp("eval_chatml"))


def _task(kind: str, suite, **extra):
    entry = {"kind": kind, "name": kind, "data": {"files": ["x.jsonl"]}, "chat": True, **extra}
    return parse_task(entry, suite, 0)


@pytest.mark.parametrize("kind", ["generation", "safety"])
def test_prompt_in_the_models_own_template(chatml, tmp_path, kind):
    task = _task(kind, tmp_path / "suite.yaml")
    lm = SimpleNamespace(tokenizer=chatml)
    ids = task._encode(lm, [], {"prompt": "What is the capital of France?"}, "en") if kind == "generation" \
        else task._encode(lm, "What is the capital of France?")
    assert chatml.decode(ids) == CHATML_PROMPT


@pytest.mark.parametrize("kind", ["generation", "safety"])
def test_chat_template_key_overrides_and_is_checked_at_load(chatml, tmp_path, kind):
    (tmp_path / "gemma.jinja").write_text(template("gemma", marked=False), encoding="utf-8")
    task = _task(kind, tmp_path / "suite.yaml", chat_template="gemma.jinja")  # relative to the suite file
    lm = SimpleNamespace(tokenizer=chatml)
    ids = task._encode(lm, [], {"prompt": "Hi"}, "en") if kind == "generation" else task._encode(lm, "Hi")
    # Gemma's template opens with bos_token, which is this tokenizer's <|im_start|>.
    assert chatml.decode(ids) == "<|im_start|><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
    with pytest.raises(UserError, match=f"key '{kind}.chat_template': 'nope.jinja' is not"):
        _task(kind, tmp_path / "suite.yaml", chat_template="nope.jinja")
    with pytest.raises(UserError, match="does not parse"):
        _task(kind, tmp_path / "suite.yaml", chat_template="{% if messages %}{{ 1 }}")
