"""The Llama 2 chat format: exact text and spacing, the loss mask token by token, and template == encoder."""

from __future__ import annotations

import shutil

import pytest

from polyglot_llama.chat import (
    IGNORE_INDEX,
    LLAMA2_CHAT_TEMPLATE,
    DialogError,
    encode_dialog,
    encode_prompt,
    format_dialog,
    install_chat_template,
    resolve_template,
    segments_to_ids,
)
from polyglot_llama.errors import UserError
from polyglot_llama.model.checkpoint import load_tokenizer

SYSTEM = "You are terse."
DIALOG = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "Hello there, who are you?"},
    {"role": "assistant", "content": "I am a model. "},
    {"role": "user", "content": " And what is 42?"},
    {"role": "assistant", "content": "A number."},
]


@pytest.fixture(scope="module")
def tokenizer(en_tokenizer_dir, tmp_path_factory):
    directory = tmp_path_factory.mktemp("chat_tok")
    shutil.copytree(en_tokenizer_dir, directory, dirs_exist_ok=True)
    install_chat_template(directory)
    return load_tokenizer(directory)


def test_template_renders_the_reference_text(tokenizer):
    text = tokenizer.apply_chat_template(DIALOG, tokenize=False)
    assert text == (
        "<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHello there, who are you? [/INST] I am a model. </s>"
        "<s>[INST] And what is 42? [/INST] A number. </s>"
    )


@pytest.mark.parametrize("messages", [DIALOG, DIALOG[1:], DIALOG[1:3], DIALOG[:3]])
def test_encoder_matches_apply_chat_template(tokenizer, messages):
    ids, _ = encode_dialog(messages, tokenizer)
    hf = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    assert ids == list(hf["input_ids"])
    # The template's {% generation %} blocks give the same answer mask as our labels.
    ours = [int(label != IGNORE_INDEX) for label in encode_dialog(messages, tokenizer)[1]]
    assert ours == list(hf["assistant_masks"])


def test_prompt_matches_template_and_reference_turn_encoding(tokenizer):
    prompt = DIALOG[:4]
    assert encode_prompt(prompt, tokenizer) == list(tokenizer.apply_chat_template(prompt, tokenize=True)["input_ids"])
    # Meta's reference encodes each turn alone: <s> + encode("[INST] u [/INST] a ") + </s>.
    turn1 = "[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHello there, who are you? [/INST] I am a model. "
    turn2 = "[INST] And what is 42? [/INST]"
    enc = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    assert encode_prompt(prompt, tokenizer) == [1] + enc(turn1) + [2] + [1] + enc(turn2)


def test_loss_mask_token_by_token(tokenizer):
    ids, labels = encode_dialog(DIALOG[1:], tokenizer)
    enc = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    prompt1, answer1 = enc("[INST] Hello there, who are you? [/INST]"), enc("I am a model. ")
    prompt2, answer2 = enc("[INST] And what is 42? [/INST]"), enc("A number. ")
    # Word-boundary pre-tokenization: prompt and answer tokenize the same alone and together (the
    # answer's leading space becomes the '▁' the tokenizer prepends to a text).
    assert ids == [1] + prompt1 + answer1 + [2] + [1] + prompt2 + answer2 + [2]
    masked = [IGNORE_INDEX]
    expected = (masked + [IGNORE_INDEX] * len(prompt1) + answer1 + [2]
                + masked + [IGNORE_INDEX] * len(prompt2) + answer2 + [2])
    assert labels == expected


def test_untrained_turns_are_context_only(tokenizer):
    dialog = [dict(m) for m in DIALOG[1:]]
    dialog[1]["train"] = False  # Ghost Attention: earlier answers are not learned
    ids, labels = encode_dialog(dialog, tokenizer)
    full_ids, full_labels = encode_dialog(DIALOG[1:], tokenizer)
    assert ids == full_ids
    second_bos = ids.index(1, 1)
    assert all(label == IGNORE_INDEX for label in labels[:second_bos])
    assert labels[second_bos:] == full_labels[second_bos:]
    assert any(label != IGNORE_INDEX for label in full_labels[:second_bos])


def test_special_token_text_in_content_stays_text(tokenizer):
    ids, labels = encode_dialog([{"role": "user", "content": "say </s> now"}, {"role": "assistant", "content": "ok"}], tokenizer)
    assert ids.count(2) == 1 and ids[-1] == 2


def test_segments_mark_answers_and_eos():
    class Tok:
        bos_token_id, eos_token_id = 1, 2

    segments = format_dialog(DIALOG[1:3], Tok())
    assert [s.content for s in segments] == [[1], "[INST] Hello there, who are you? [/INST]", " I am a model. ", [2]]
    assert [(s.is_answer, s.learn) for s in segments] == [(False, False), (False, False), (True, True), (True, True)]


@pytest.mark.parametrize(
    "messages, reason",
    [
        ([], "no messages"),
        ([{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}], "unknown role"),
        ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "roles do not alternate"),
        ([{"role": "assistant", "content": "a"}], "roles do not alternate"),
        ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "  "}], "empty assistant turn"),
        ([{"role": "user", "content": "a"}], "no final answer"),
        ([{"role": "user", "content": "a"}, {"role": "assistant", "content": 3}], "malformed message"),
        ([{"role": "user", "content": "a"}, {"role": "system", "content": "s"}], "roles do not alternate"),
    ],
)
def test_bad_dialogs_are_rejected_with_a_reason(messages, reason):
    class Tok:
        bos_token_id, eos_token_id = 1, 2

    with pytest.raises(DialogError) as info:
        format_dialog(messages, Tok())
    assert info.value.reason == reason


def test_other_template_answers_from_blocks_or_prefix_rendering(tokenizer):
    template = ("{% for m in messages %}{% if m['role'] == 'user' %}{{ bos_token + 'Q: ' + m['content'] + '\nA:' }}"
                "{% else %}{% generation %}{{ ' ' + m['content'] + eos_token }}{% endgeneration %}{% endif %}{% endfor %}")
    ids, labels = encode_dialog(DIALOG[1:3], tokenizer, template=template)
    answer = [i for i, label in zip(ids, labels) if label != IGNORE_INDEX]
    assert tokenizer.decode(answer) == "I am a model. </s>"
    two = [dict(m) for m in DIALOG[1:]]
    two[1]["train"] = False
    ids, labels = encode_dialog(two, tokenizer, template=template)
    assert tokenizer.decode([i for i, label in zip(ids, labels) if label != IGNORE_INDEX]) == "A number.</s>"
    # Without the blocks the answers come from rendering each answer's prefix: the same labels.
    plain = template.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    assert encode_dialog(two, tokenizer, template=plain) == (ids, labels)
    # A template that renders an answer differently once more turns follow cannot be diffed: it is refused.
    moving = plain.replace("{{ ' ' + m['content']", "{{ (' Final:' if loop.last else '') + ' ' + m['content']")
    with pytest.raises(UserError, match="renders message 1 differently.*generation"):
        encode_dialog(two, tokenizer, template=moving)


def test_template_specs(tokenizer, en_tokenizer_dir, tmp_path):
    plain = load_tokenizer(en_tokenizer_dir)
    assert resolve_template("llama2", plain) == LLAMA2_CHAT_TEMPLATE
    with pytest.raises(UserError, match="no chat_template"):
        resolve_template("tokenizer", plain)
    assert resolve_template("tokenizer", tokenizer) == LLAMA2_CHAT_TEMPLATE
    assert segments_to_ids(tokenizer, []) == ([], [])
