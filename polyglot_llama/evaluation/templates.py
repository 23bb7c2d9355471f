"""Prompt templates: ``str.format`` fields filled from a record, with the fields listed for column checks, and
the chat rendering of a filled prompt for chat checkpoints (the model's own chat template)."""

from __future__ import annotations

import string


def template_fields(template: str) -> list[str]:
    """Record fields a template reads, e.g. "{passage}\\n{question}" → ["passage", "question"]."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def fill_template(template: str, record: dict) -> str:
    return template.format(**{name: record[name] for name in template_fields(template)})


def chat_prompt_ids(tokenizer, text: str, system: str = "", chat_template: str = "") -> list[int]:
    """``text`` as a user turn (after ``system``, if any) rendered as a generation prompt by ``chat_template``
    ('' = the tokenizer's own, Llama 2's format when it has none; see `polyglot_llama.chat`)."""
    from ..chat import encode_prompt, resolve_template

    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    return encode_prompt(messages, tokenizer, resolve_template(chat_template, tokenizer))
