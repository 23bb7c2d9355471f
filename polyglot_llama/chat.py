"""Conversations in the model's own chat template: generation prompts and answer-only training labels.

Every stage renders conversations here. The template is the tokenizer's own ``chat_template`` (a config's
``chat_template`` key may name another, see `check_template_spec`); Llama 2's format is the fallback for a
tokenizer without one and the template `tokenizer train` installs. `encode_prompt` gives a generation prompt,
`encode_dialog` a conversation's ids with labels (-100 on everything but the learned answers, each answer's
end-of-turn token included); both produce exactly ``apply_chat_template``'s ids.

Llama 2 (Meta's llama/generation.py) encodes every turn separately as ``<s>`` + encode(f"[INST] {user}
[/INST] {answer} ") + ``</s>``, the system prompt folded into the first user message as
``<<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user}``; a generation prompt ends at ``[/INST]``. `format_dialog` writes
that as segments and `LLAMA2_CHAT_TEMPLATE` renders the same text with ``{% generation %}`` blocks, so Hugging
Face tools (e.g. TRL's ``assistant_only_loss``) get the same answer mask. In this format special tokens are
inserted as ids, never parsed out of message text, so a user who types ``</s>`` gets the characters; other
templates are tokenised as ``apply_chat_template`` does, which parses them.

A message may carry ``"train": false`` (Ghost Attention's earlier turns): it stays in the context but is
not learned.
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
GENERATION_BLOCK = re.compile(r"\{%-?\s*generation\s*-?%\}")
"""A ``{% generation %}`` tag: the template marks its answers (transformers' assistant mask)."""

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
        raise UserError(f"the tokenizer has no chat_template and no {name}_token, which the fallback Llama 2 chat "
                        "format needs; set chat_template to the model's template (a Jinja string or file)")
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


def conversation_template(tokenizer, template: str | None = None) -> str:
    """The template to render with: ``template`` if given, else the tokenizer's own, else Llama 2's."""
    if template:
        return template
    own = getattr(tokenizer, "chat_template", None)
    if isinstance(own, dict):  # several named templates (e.g. "default", "tool_use")
        own = own.get("default")
    return own or LLAMA2_CHAT_TEMPLATE


def encode_dialog(messages: Sequence[dict], tokenizer, template: str | None = None,
                  allow_empty_answers: bool = False) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of a training conversation: labels are -100 on every token but learned answers.

    ``template`` None: the tokenizer's own chat template, Llama 2's when it has none. The ids are exactly
    ``apply_chat_template``'s. The answers come from the template: its ``{% generation %}`` blocks when it
    has them, else `_rendered_answer_spans` (each answer is what rendering the conversation up to it adds
    to the generation prompt before it), from the answer's first token through its end-of-turn token.
    """
    template = conversation_template(tokenizer, template)
    if template == LLAMA2_CHAT_TEMPLATE:
        return segments_to_ids(tokenizer, format_dialog(messages, tokenizer, allow_empty_answers=allow_empty_answers))
    validate_dialog(messages, allow_empty_answers=allow_empty_answers)
    if GENERATION_BLOCK.search(template):
        out = tokenizer.apply_chat_template(list(messages), chat_template=template, tokenize=True, return_dict=True,
                                            return_assistant_tokens_mask=True)
        input_ids, runs = list(out["input_ids"]), _runs(out["assistant_masks"])
    else:
        input_ids, runs = _rendered_answer_spans(messages, tokenizer, template)
    # One run per assistant message, in order: apply the per-message "train" flags to them.
    learn = [bool(m.get("train", True)) for m in messages if m["role"] == "assistant"]
    if len(runs) != len(learn):
        if not all(learn):
            raise UserError("the chat template's answer blocks do not match the assistant messages one to one, "
                            "so per-message 'train' flags cannot be applied")
        learn = [True] * len(runs)
    labels = [IGNORE_INDEX] * len(input_ids)
    for (start, end), keep in zip(runs, learn):
        if keep:
            labels[start:end] = input_ids[start:end]
    return input_ids, labels


def _runs(mask: Sequence[int]) -> list[tuple[int, int]]:
    """[start, end) token ranges of the runs of 1s in ``mask``."""
    runs: list[list[int]] = []
    for t, bit in enumerate(mask):
        if bit and runs and runs[-1][1] == t:
            runs[-1][1] = t + 1
        elif bit:
            runs.append([t, t + 1])
    return [(a, b) for a, b in runs]


def _render(tokenizer, messages: Sequence[dict], template: str, add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(list(messages), chat_template=template, tokenize=False,
                                         add_generation_prompt=add_generation_prompt)


def _rendered_answer_spans(messages: Sequence[dict], tokenizer, template: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Ids of the rendered conversation and the [start, end) token range of each answer, for a template
    without ``{% generation %}`` blocks.

    Answer k's characters are those that rendering messages[:k+1] adds to the generation prompt of
    messages[:k]; the tokens overlapping them (as transformers marks generation blocks) form its range,
    cut after its last special token: what a template writes after the end-of-turn token (ChatML's and
    Gemma's newline) is never generated, so it is not learned. Working on text, not ids, keeps
    tokenisation across the boundary (e.g. SentencePiece's "▁answer") out of the comparison.
    """
    full = _render(tokenizer, messages, template, False)
    char_spans = []
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:k], template, True)
        upto = _render(tokenizer, messages[:k + 1], template, False)
        if not (upto.startswith(before) and full.startswith(upto)):
            raise UserError(f"the chat template renders message {k} differently once later messages follow, so its "
                            "answer cannot be located; put {% generation %} … {% endgeneration %} around the "
                            "assistant content and end-of-turn token in the template")
        char_spans.append((len(before), len(upto)))
    encoded = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    input_ids, offsets = list(encoded["input_ids"]), encoded["offset_mapping"]
    special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    runs = []
    for a, b in char_spans:
        tokens = [t for t, (s, e) in enumerate(offsets) if s < b and e > a]
        ends = [t for t in tokens if input_ids[t] in special]
        if tokens:
            runs.append((tokens[0], (ends[-1] if ends else tokens[-1]) + 1))
    return input_ids, runs


def encode_prompt(messages: Sequence[dict], tokenizer, template: str | None = None) -> list[int]:
    """Ids of a generation prompt (ends with a user message), rendered by ``template`` (None: the tokenizer's
    own, Llama 2's when it has none) with its generation prompt, e.g. up to ``[/INST]`` or
    ``<|im_start|>assistant\\n``."""
    template = conversation_template(tokenizer, template)
    if template == LLAMA2_CHAT_TEMPLATE:
        ids, _ = segments_to_ids(tokenizer, format_dialog(messages, tokenizer, for_generation=True))
        return ids
    validate_dialog(messages, for_generation=True)
    return list(tokenizer.apply_chat_template(list(messages), chat_template=template, tokenize=True,
                                              add_generation_prompt=True, return_dict=True)["input_ids"])


def check_template_spec(spec: str, key: str = "chat_template", base_dir: str | Path | None = None) -> str:
    """Validate a config's ``chat_template`` at load: '' (the tokenizer's own, Llama 2's when it has none),
    'llama2', 'tokenizer' (the tokenizer's own, required), a Jinja string, or the path of a Jinja file
    (relative to ``base_dir`` if given). Returns the spec with a file replaced by its text."""
    if spec in ("", "llama2", "tokenizer"):
        return spec
    text = spec
    if not _looks_like_jinja(spec):
        path = Path(base_dir or "") / spec
        if not path.is_file():
            raise UserError(f"key '{key}': {spec!r} is not '', 'llama2', 'tokenizer', a Jinja template or an "
                            "existing Jinja file")
        text = path.read_text(encoding="utf-8")
    import jinja2

    try:
        _make_jinja_env().parse(text)
    except jinja2.TemplateSyntaxError as e:
        raise UserError(f"key '{key}': the chat template does not parse (line {e.lineno}: {e.message})") from None
    return text


def resolve_template(spec: str, tokenizer, where: str = "the tokenizer") -> str:
    """The template text a validated ``chat_template`` spec names (see `check_template_spec`)."""
    if spec == "llama2":
        return LLAMA2_CHAT_TEMPLATE
    if spec in ("", "tokenizer"):
        if spec == "tokenizer" and not getattr(tokenizer, "chat_template", None):
            raise UserError(f"{where}: chat_template 'tokenizer' but the tokenizer has no chat_template; "
                            "set chat_template: llama2 or give a template")
        return conversation_template(tokenizer)
    return spec if _looks_like_jinja(spec) else Path(spec).read_text(encoding="utf-8")


def _looks_like_jinja(spec: str) -> bool:
    return "{{" in spec or "{%" in spec


def _make_jinja_env():
    """A jinja2 environment that parses transformers' ``{% generation %}`` blocks (syntax checks only)."""
    import jinja2
    from jinja2.ext import Extension

    class GenerationExtension(Extension):
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.Scope(body, lineno=lineno)

    return jinja2.Environment(extensions=[GenerationExtension, "jinja2.ext.loopcontrols"])


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
