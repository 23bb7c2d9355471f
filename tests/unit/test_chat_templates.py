"""The model's own chat template: ids token-exact with apply_chat_template, answer masks from the template.

For Llama 2, Llama 3, ChatML and Gemma templates (tests/chat_families.py): our ids equal
``apply_chat_template``'s, our answer mask on the published (unmarked) template equals transformers'
``assistant_masks`` on the same template with ``{% generation %}`` blocks, every answer ends with the
family's end-of-turn token, and the generation prompt ends exactly where the first learned token starts.
"""

from __future__ import annotations

import pytest
from chat_families import END_OF_TURN, FAMILIES, build_tokenizer, template

# Only names main already had at module level, so the mask tests fail on main by assertion, not import.
from polyglot_llama.chat import IGNORE_INDEX, LLAMA2_CHAT_TEMPLATE, encode_dialog, encode_prompt
from polyglot_llama.errors import UserError

SYSTEM = {"role": "system", "content": "You are terse."}
TURNS = [
    {"role": "user", "content": "Hello there, who are you?"},
    {"role": "assistant", "content": "I am a model."},
    {"role": "user", "content": "And what is 42?"},
    {"role": "assistant", "content": "A number of the sample text."},
]
DIALOGS = {"one turn": TURNS[:2], "two turns": TURNS, "system": [SYSTEM] + TURNS}


@pytest.fixture(scope="module", params=FAMILIES)
def family(request, en_tokenizer_dir, tmp_path_factory):
    name = request.param
    return name, build_tokenizer(name, tmp_path_factory.mktemp(f"chat_{name}"), en_tokenizer_dir)


def _runs(labels):
    runs, prev = [], False
    for t, label in enumerate(labels):
        if label != IGNORE_INDEX and not prev:
            runs.append([t, t + 1])
        elif label != IGNORE_INDEX:
            runs[-1][1] = t + 1
        prev = label != IGNORE_INDEX
    return runs


@pytest.mark.parametrize("dialog", DIALOGS)
def test_ids_and_mask_token_exact(family, dialog):
    name, tokenizer = family
    messages = DIALOGS[dialog]
    ids, labels = encode_dialog(messages, tokenizer)  # no template given: the tokenizer's own
    assert ids == list(tokenizer.apply_chat_template(messages, tokenize=True)["input_ids"])
    reference = tokenizer.apply_chat_template(messages, chat_template=template(name, marked=True), tokenize=True,
                                              return_dict=True, return_assistant_tokens_mask=True)
    assert ids == list(reference["input_ids"])
    assert [int(label != IGNORE_INDEX) for label in labels] == list(reference["assistant_masks"])
    assert all(label in (IGNORE_INDEX, i) for i, label in zip(ids, labels))
    # Each answer: its text, then the family's end-of-turn token, learned; nothing after it.
    answers = [m["content"] for m in messages if m["role"] == "assistant"]
    runs = _runs(labels)
    assert len(runs) == len(answers)
    for (start, end), answer in zip(runs, answers):
        assert tokenizer.convert_ids_to_tokens(ids[end - 1]) == END_OF_TURN[name]
        assert tokenizer.decode(ids[start:end - 1]).strip() == answer
    # The generation prompt ends where the first answer starts (what a sampled answer continues).
    first_user = next(i for i, m in enumerate(messages) if m["role"] == "user")
    prompt = encode_prompt(messages[:first_user + 1], tokenizer)
    assert ids[:len(prompt)] == prompt and runs[0][0] == len(prompt)


def test_marked_and_unmarked_templates_agree(family):
    name, tokenizer = family
    messages = [SYSTEM] + TURNS
    marked = encode_dialog(messages, tokenizer, template(name, marked=True))
    assert encode_dialog(messages, tokenizer, template(name, marked=False)) == marked


def test_train_false_answer_stays_in_context_unlearned(family):
    name, tokenizer = family
    messages = [dict(m) for m in TURNS]
    messages[1]["train"] = False
    ids, labels = encode_dialog(messages, tokenizer)
    full_ids, full_labels = encode_dialog(TURNS, tokenizer)
    assert ids == full_ids
    first, second = _runs(full_labels)
    assert all(label == IGNORE_INDEX for label in labels[:second[0]])
    assert labels[second[0]:second[1]] == full_labels[second[0]:second[1]]


def test_llama2_fallback_for_a_tokenizer_without_template(en_tokenizer_dir):
    from polyglot_llama.chat import resolve_template
    from polyglot_llama.model.checkpoint import load_tokenizer

    tokenizer = load_tokenizer(en_tokenizer_dir)
    assert not tokenizer.chat_template
    assert resolve_template("", tokenizer) == LLAMA2_CHAT_TEMPLATE
    ids = encode_prompt(TURNS[:1], tokenizer)
    assert tokenizer.decode(ids) == "<s> [INST] Hello there, who are you? [/INST]"


def test_chatml_prompt_is_the_models_format(en_tokenizer_dir, tmp_path):
    tokenizer = build_tokenizer("chatml", tmp_path)
    text = tokenizer.decode(encode_prompt([{"role": "user", "content": "What is the capital of France?"}], tokenizer))
    assert text == ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
                    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")


def test_template_spec_validation_and_override(tmp_path, family):
    from polyglot_llama.chat import check_template_spec, resolve_template

    name, tokenizer = family
    check_template_spec("")
    check_template_spec(template("chatml", marked=True))
    with pytest.raises(UserError, match="key 'chat_template'.*not '', 'llama2'"):
        check_template_spec(str(tmp_path / "missing.jinja"))
    with pytest.raises(UserError, match="does not parse"):
        check_template_spec("{% for m in messages %}{{ m['content'] }}")
    path = tmp_path / "t.jinja"
    path.write_text(template("llama3", marked=False), encoding="utf-8")
    check_template_spec(str(path))
    assert resolve_template(str(path), tokenizer) == template("llama3", marked=False)
    assert resolve_template("llama2", tokenizer) == LLAMA2_CHAT_TEMPLATE
    assert resolve_template("", tokenizer) == template(name, marked=False)


def test_rlhf_prompts_and_reward_pairs_use_the_tokenizers_template(tmp_path):
    """Rejection sampling, PPO and context distillation encode prompts with `encode_prompts`; reward models
    score `encode_conversation`: both in the model's own template."""
    from polyglot_llama.io import RejectCounter
    from polyglot_llama.model.reward_model import encode_conversation
    from polyglot_llama.rlhf.prompts import Prompt, encode_prompts

    tokenizer = build_tokenizer("chatml", tmp_path)
    (prompt,) = encode_prompts([Prompt("p1", "en", [{"role": "user", "content": "Hi"}])], tokenizer, 512, RejectCounter())
    head = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    assert tokenizer.decode(prompt.ids) == head + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    pair = tokenizer.decode(encode_conversation("Hi", "Hello.", tokenizer))
    assert pair == head + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n"
