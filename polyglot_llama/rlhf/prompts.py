"""Prompt sets for rejection sampling, PPO and context distillation: JSONL/Parquet records → `Prompt`s.

A record is ``{"prompt": str}`` or ``{"messages": [...]}`` (ending with a user turn), plus optional
``"id"``, ``"lang"`` (default: the config's ``default_lang``), ``"safety"`` (true for adversarial prompts:
the combined reward then uses the safety RM, Llama 2's IS_SAFETY(p)) and ``"category"`` (risk category,
for context distillation's answer templates). Records that cannot be used are skipped, counted and
written to ``<output>/rejected_prompts.jsonl`` with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..chat import DialogError, encode_prompt, validate_dialog
from ..errors import UserError
from ..io import RejectCounter, expand_inputs, iter_records, write_jsonl
from ..languages import normalize_language


@dataclass
class Prompt:
    id: str
    lang: str
    messages: list[dict]
    is_safety: bool = False
    category: str = ""
    ids: list[int] = field(default_factory=list, repr=False)
    """The chat-format generation prompt as token ids (filled by `encode_prompts`)."""


def _to_prompt(record: dict, default_id: str, default_lang: str) -> Prompt:
    if isinstance(record.get("messages"), list):
        messages = record["messages"]
    elif isinstance(record.get("prompt"), str) and record["prompt"].strip():
        messages = [{"role": "user", "content": record["prompt"]}]
    else:
        raise DialogError("no prompt", "a record needs a non-empty 'prompt' string or a 'messages' list")
    validate_dialog(messages, for_generation=True)
    lang = normalize_language(str(record.get("lang") or default_lang))
    return Prompt(str(record.get("id", default_id)), lang, [dict(m) for m in messages],
                  bool(record.get("safety", False)), str(record.get("category") or ""))


def load_prompts(patterns: list[str], default_lang: str, key: str = "prompts") -> tuple[list[Prompt], RejectCounter]:
    """Read every prompt record of ``patterns``; an empty result is a `UserError` naming ``key``."""
    if not patterns:
        raise UserError(f"key '{key}' is empty; give JSONL/Parquet files of {{'prompt': ...}} or {{'messages': [...]}} records")
    files = expand_inputs(patterns)
    rejects = RejectCounter()
    prompts: list[Prompt] = []
    seen: set[str] = set()
    counter = 0
    for file in files:
        for record in iter_records([file], rejects, text_field=None):
            counter += 1
            try:
                prompt = _to_prompt(record, f"{Path(file).stem}-{counter}", default_lang)
            except UserError as e:
                rejects.add(file, counter, str(e), str(record))
                continue
            if prompt.id in seen:
                rejects.add(file, counter, f"duplicate id {prompt.id!r}", str(record))
                continue
            seen.add(prompt.id)
            prompts.append(prompt)
    if not prompts:
        reasons = ", ".join(f"{r}: {n}" for r, n in rejects.by_reason().items()) or "the files hold no records"
        raise UserError(f"key '{key}': no usable prompt in {', '.join(files)} ({reasons})")
    return prompts, rejects


def encode_prompts(prompts: list[Prompt], tokenizer, max_prompt_tokens: int, rejects: RejectCounter) -> list[Prompt]:
    """Fill ``Prompt.ids``; prompts longer than ``max_prompt_tokens`` are counted in ``rejects`` and dropped."""
    kept = []
    for prompt in prompts:
        prompt.ids = encode_prompt(prompt.messages, tokenizer)
        if len(prompt.ids) > max_prompt_tokens:
            rejects.add("prompts", 0, f"prompt longer than max_prompt_tokens ({max_prompt_tokens})", prompt.id)
            continue
        kept.append(prompt)
    if not kept:
        raise UserError(f"every prompt is longer than max_prompt_tokens ({max_prompt_tokens}); raise it")
    return kept


def write_rejects(rejects: RejectCounter, output: str | Path) -> None:
    if rejects.count:
        write_jsonl(Path(output) / "rejected_prompts.jsonl", rejects.rejected)


def by_language(prompts: list[Prompt]) -> dict[str, list[int]]:
    """Indices of the prompts of each language, languages sorted."""
    groups: dict[str, list[int]] = {}
    for i, prompt in enumerate(prompts):
        groups.setdefault(prompt.lang, []).append(i)
    return dict(sorted(groups.items()))
