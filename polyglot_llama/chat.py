"""The Llama 2 chat format: one formatter, the token-level loss mask, and the same format as a Jinja template.

Meta's reference (llama/generation.py) encodes every turn separately as
``<s>`` + encode(f"[INST] {user} [/INST] {answer} ") + ``</s>``, with the system prompt folded into the
first user message as ``<<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user}``; a prompt for generation ends at
``[/INST]``. `format_dialog` writes exactly that as segments, `encode_dialog` turns the segments into ids and
labels (-100 on everything that is not a learned answer; the answer's ``</s>`` is learned), and
`LLAMA2_CHAT_TEMPLATE` renders the same text for `tokenizer.apply_chat_template`, with ``{% generation %}``
blocks so Hugging Face tools (e.g. TRL's ``assistant_only_loss``) get the same answer mask.

A message may carry ``"train": false`` (Ghost Attention's earlier turns): it stays in the context but is
not learned. Special tokens are inserted as ids, never parsed out of message text, so a user who types
``</s>`` gets the characters, not an end of sequence.
"""

from __future__ import annotations

import bisect
import json
import re
from pathlib import Path
from typing import NamedTuple, Sequence

from .errors import UserError
from .io import write_json, write_text

ROLES = ("system", "user", "assistant")
B_INST, E_INST = "[INST]", "[/INST]"
B_SYS, E_SYS = "<<SYS>>\n", "\n<</SYS>>\n\n"
IGNORE_INDEX = -100

LLAMA2_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}"
    "{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}"
    "{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{% generation %}{{ ' ' + content.strip() + ' ' + eos_token }}{% endgeneration %}"
    "{% endif %}{% endfor %}"
)


class DialogError(UserError):
    """A conversation that cannot be formatted; ``reason`` is a short category for counting rejects."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Segment(NamedTuple):
    content: str | list[int]
    """Text to tokenize, or token ids inserted as they are (BOS/EOS)."""
    is_answer: bool
    """Part of an assistant answer (its text and closing ``</s>``)."""
    learn: bool = False
    """Counted in the loss: an answer whose message is not marked ``"train": false``."""


def validate_dialog(messages: Sequence[dict], for_generation: bool = False, allow_empty_answers: bool = False) -> None:
    """Raise `DialogError` unless ``messages`` is [system?] user, assistant, user, ... as the format needs.

    A training dialogue ends with an assistant answer; a generation prompt (``for_generation``) ends with
    a user message.
    """
    if not isinstance(messages, (list, tuple)) or not messages:
        raise DialogError("no messages", "'messages' must be a non-empty list of {role, content}")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise DialogError("malformed message", f"message {i} needs a string 'content'")
        if message.get("role") not in ROLES:
            raise DialogError("unknown role", f"message {i} has role {message.get('role')!r}; use one of {', '.join(ROLES)}")
    turns = messages[1:] if messages[0]["role"] == "system" else messages
    if not turns:
        raise DialogError("no user message", "a system prompt alone is not a conversation")
    for i, message in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if message["role"] != expected:
            index = i + len(messages) - len(turns)
            raise DialogError("roles do not alternate",
                              f"message {index} is {message['role']!r} where {expected!r} was expected "
                              "(a system prompt may only come first)")
        if expected == "assistant" and not message["content"].strip() and not allow_empty_answers:
            raise DialogError("empty assistant turn", f"message {i + len(messages) - len(turns)} has no text")
    last = turns[-1]["role"]
    if for_generation and last != "user":
        raise DialogError("prompt ends with an answer", "a generation prompt must end with a user message")
    if not for_generation and last != "assistant":
        raise DialogError("no final answer", "a training conversation must end with an assistant message")


def _special_id(tokenizer, name: str) -> int:
    token_id = getattr(tokenizer, f"{name}_token_id", None)
    if token_id is None:
        raise UserError(f"the tokenizer has no {name}_token; the Llama 2 chat format needs <s> and </s>")
    return token_id


def format_dialog(messages: Sequence[dict], tokenizer, for_generation: bool = False,
                  allow_empty_answers: bool = False) -> list[Segment]:
    """The Llama 2 chat format of ``messages`` as segments (text to tokenize, or BOS/EOS ids).

    ``allow_empty_answers``: scoring a sampled answer that is empty (the policy stopped at once) is
    legitimate; training on one is not.
    """
    validate_dialog(messages, for_generation, allow_empty_answers)
    bos, eos = _special_id(tokenizer, "bos"), _special_id(tokenizer, "eos")
    system = messages[0]["content"] if messages[0]["role"] == "system" else None
    turns = list(messages[1:] if system is not None else messages)
    segments: list[Segment] = []
    for i in range(0, len(turns), 2):
        user = turns[i]["content"]
        if i == 0 and system is not None:
            user = B_SYS + system + E_SYS + user
        segments.append(Segment([bos], False))
        segments.append(Segment(f"{B_INST} {user.strip()} {E_INST}", False))
        if i + 1 < len(turns):
            answer = turns[i + 1]
            learn = bool(answer.get("train", True))
            segments.append(Segment(f" {answer['content'].strip()} ", True, learn))
            segments.append(Segment([eos], True, learn))
    return segments


def _tokenize_chunk(tokenizer, chunk: list[Segment]) -> tuple[list[int], list[bool]]:
    """Tokenize adjacent text segments as one string (as the reference does) and give each token the
    ``learn`` flag of the segment its first character comes from (offsets: character spans in the chunk)."""
    text = "".join(seg.content for seg in chunk)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, split_special_tokens=True)
    starts, flags, position = [], [], 0
    for seg in chunk:
        starts.append(position)
        flags.append(seg.learn)
        position += len(seg.content)
    learn = [flags[max(bisect.bisect_right(starts, start) - 1, 0)] for start, _ in encoded["offset_mapping"]]
    return list(encoded["input_ids"]), learn


def segments_to_ids(tokenizer, segments: list[Segment]) -> tuple[list[int], list[int]]:
    """Token ids and labels (the id where learned, -100 elsewhere) of formatted segments."""
    input_ids: list[int] = []
    labels: list[int] = []
    pending: list[Segment] = []

    def flush():
        if pending:
            ids, learn = _tokenize_chunk(tokenizer, pending)
            input_ids.extend(ids)
            labels.extend(i if keep else IGNORE_INDEX for i, keep in zip(ids, learn))
            pending.clear()

    for seg in segments:
        if isinstance(seg.content, str):
            pending.append(seg)
            continue
        flush()
        input_ids.extend(seg.content)
        labels.extend(seg.content if seg.learn else [IGNORE_INDEX] * len(seg.content))
    flush()
    return input_ids, labels


def encode_dialog(messages: Sequence[dict], tokenizer, template: str | None = None,
                  allow_empty_answers: bool = False) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of a training conversation: labels are -100 on every token but learned answers.

    ``template`` None uses the Llama 2 format above. Any other Jinja chat template is rendered by
    `tokenizer.apply_chat_template` and must mark answers with ``{% generation %}`` blocks.
    """
    if template is None or template == LLAMA2_CHAT_TEMPLATE:
        return segments_to_ids(tokenizer, format_dialog(messages, tokenizer, allow_empty_answers=allow_empty_answers))
    return _encode_with_template(messages, tokenizer, template)


def _encode_with_template(messages, tokenizer, template: str) -> tuple[list[int], list[int]]:
    validate_dialog(messages)
    if not re.search(r"\{%-?\s*generation\s*-?%\}", template):
        raise UserError("the chat template has no {% generation %} block around assistant answers, so the "
                        "answer tokens cannot be found; add one (see polyglot_llama.chat.LLAMA2_CHAT_TEMPLATE)")
    out = tokenizer.apply_chat_template(list(messages), chat_template=template, tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True)
    input_ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
    # One run of mask 1s per assistant message, in order: apply the per-message "train" flags to them.
    answers = [m for m in messages if m["role"] == "assistant"]
    runs, inside = [], False
    for t, bit in enumerate(mask):
        if bit and not inside:
            runs.append([t, t + 1])
        elif bit:
            runs[-1][1] = t + 1
        inside = bool(bit)
    learn = [bool(m.get("train", True)) for m in answers]
    if len(runs) != len(answers):
        if not all(learn):
            raise UserError("the chat template's answer blocks do not match the assistant messages one to one, "
                            "so per-message 'train' flags cannot be applied")
        learn = [True] * len(runs)
    labels = [IGNORE_INDEX] * len(input_ids)
    for (start, end), keep in zip(runs, learn):
        if keep:
            labels[start:end] = input_ids[start:end]
    return input_ids, labels


def encode_prompt(messages: Sequence[dict], tokenizer, template: str | None = None) -> list[int]:
    """Ids of a generation prompt (ends with a user message): everything up to and including ``[/INST]``."""
    if template is None or template == LLAMA2_CHAT_TEMPLATE:
        ids, _ = segments_to_ids(tokenizer, format_dialog(messages, tokenizer, for_generation=True))
        return ids
    validate_dialog(messages, for_generation=True)
    return list(tokenizer.apply_chat_template(list(messages), chat_template=template, tokenize=True,
                                              add_generation_prompt=True, return_dict=True)["input_ids"])


def load_template(spec: str, tokenizer_dir: str | Path | None = None) -> str | None:
    """Resolve a config's ``chat_template``: "llama2" (None: the built-in format), "tokenizer" (the one in
    the tokenizer directory) or the path of a Jinja file."""
    if spec == "llama2":
        return None
    if spec == "tokenizer":
        config_file = Path(tokenizer_dir or "") / "tokenizer_config.json"
        jinja_file = Path(tokenizer_dir or "") / "chat_template.jinja"
        if jinja_file.is_file():
            return jinja_file.read_text(encoding="utf-8")
        template = json.loads(config_file.read_text()).get("chat_template") if config_file.is_file() else None
        if not isinstance(template, str):
            raise UserError(f"{tokenizer_dir}: chat_template 'tokenizer' but the tokenizer has no chat_template; "
                            "run install_chat_template or set chat_template: llama2")
        return template
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"chat_template {spec!r} is not 'llama2', 'tokenizer' or an existing Jinja file")
    return path.read_text(encoding="utf-8")


def install_chat_template(tokenizer_dir: str | Path, template: str = LLAMA2_CHAT_TEMPLATE) -> Path:
    """Write ``template`` into ``tokenizer_config.json`` (and ``chat_template.jinja`` if the directory has
    one, since transformers prefers that file) so `apply_chat_template` uses it."""
    tokenizer_dir = Path(tokenizer_dir)
    config_file = tokenizer_dir / "tokenizer_config.json"
    if not config_file.is_file():
        raise UserError(f"{tokenizer_dir}: no tokenizer_config.json; give a Hugging Face tokenizer directory")
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["chat_template"] = template
    write_json(config_file, config)
    jinja_file = tokenizer_dir / "chat_template.jinja"
    if jinja_file.is_file():
        write_text(jinja_file, template)
    return config_file
