"""Checks every config value gets when the config loads, by the field's name, before any stage code runs.

Stage dataclasses validate their own rules in ``__post_init__``; these are the rules that hold across all
stages and that a stage forgets easily: a probability or fraction lies in [0, 1], a count or a learning rate is
not negative, a language code is a real ISO 639 code (normalised once, here), a model shape divides evenly.
A bad value fails in milliseconds, naming the key, instead of after a model was loaded.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import UserError
from .languages import check_language

# Field names holding language codes (a code, a list of codes, or a mapping keyed by code).
LANGUAGE_KEYS = frozenset({"lang", "langs", "languages", "default_lang", "target_lang", "source_lang"})

# Suffixes of fields that are shares, fractions, ratios or probabilities: each number must be in [0, 1].
_UNIT_SUFFIXES = ("threshold", "_thr", "_frac", "fraction", "_ratio", "share", "top_p")
# Names of counts, sizes, rates and seeds: a negative number is meaningless.
_NON_NEGATIVE_PREFIXES = ("max_", "min_", "num_", "n_")
_NON_NEGATIVE_SUFFIXES = ("_size", "_steps", "_tokens", "_length", "_every", "epochs", "_turns", "_documents",
                          "_chars", "_constraints", "_per_prompt", "_per_lang", "_batches", "_checkpoints", "_gb",
                          "_of", "_len")
_NON_NEGATIVE = frozenset({"steps", "dialogues", "limit", "bins", "lr", "eps", "weight_decay", "grad_clip",
                           "temperature", "tasks", "rounds", "patience", "new_tokens", "seed", "grad_accum",
                           "samples_per_prompt", "alpha", "kl_beta", "gamma", "lam", "value_coef"})
# No BPE vocabulary comes near this (Llama 2: 32,000; the largest common ones about 256,000). A request
# beyond it was a typo, and a trainer asked for it silently stops at whatever the corpus supports.
MAX_VOCAB_SIZE = 1 << 20


def _numbers(value: Any):
    """The numbers inside a value: itself, or the values of a per-language mapping, or list items."""
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _numbers(v)


def _is_unit(name: str) -> bool:
    return name.endswith(_UNIT_SUFFIXES)


def _is_non_negative(name: str) -> bool:
    return name in _NON_NEGATIVE or name.startswith(_NON_NEGATIVE_PREFIXES) or name.endswith(_NON_NEGATIVE_SUFFIXES)


def check_value(name: str, value: Any, key: str) -> Any:
    """Check one field's value by its name; returns the value, with language codes normalised."""
    if name in LANGUAGE_KEYS:
        return _check_languages(value, key)
    for number in _numbers(value):
        if isinstance(number, float) and not math.isfinite(number):
            raise UserError(f"key '{key}' is {number}; give a finite number")
        if _is_unit(name) and not 0 <= number <= 1:
            raise UserError(f"key '{key}' is {number}; it is a share or probability and must be between 0 and 1")
        if _is_non_negative(name) and number < 0:
            raise UserError(f"key '{key}' is {number}; it must not be negative")
    if name == "vocab_size" and isinstance(value, int) and value > MAX_VOCAB_SIZE:
        raise UserError(f"key '{key}' is {value:,}; use at most {MAX_VOCAB_SIZE:,} (Llama 2 uses 32,000)")
    return value


def _check_languages(value: Any, key: str) -> Any:
    if value is None or value == "" or isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        return check_language(value, key)
    if isinstance(value, (list, tuple)):
        return [check_language(v, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):  # per-task language names, e.g. {task: lang}: check the values
        return {k: check_language(v, f"{key}.{k}") if isinstance(v, str) else v for k, v in value.items()}
    return value


def check_fields(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Apply `check_value` to each ``{field_name: value}`` of one config section (before construction)."""
    return {name: check_value(name, value, f"{prefix}{name}") for name, value in values.items()}
