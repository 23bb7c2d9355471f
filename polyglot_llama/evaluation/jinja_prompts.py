"""Jinja prompts for benchmark task files, in lm-evaluation-harness's style (doc_to_text / doc_to_choice /
doc_to_target), so published prompts carry over as written.

A template containing ``{{`` or ``{%`` is Jinja, anything else a ``str.format`` template. Expressions
(choice lists, targets) are Jinja expressions evaluated to Python values. Records' fields are variables;
``w`` holds the task's words for the record's language (XNLI's "right?/Yes/Also/No", XCOPA's connectives).
Rendering is sandboxed: a task file cannot reach Python internals.
"""

from __future__ import annotations

from functools import cache

from jinja2 import StrictUndefined, meta
from jinja2.exceptions import TemplateError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..errors import UserError
from .templates import fill_template, template_fields

RECORD_ERRORS = (UndefinedError, ValueError, TypeError, IndexError, KeyError)
"""What a record with an unusable value raises while rendering: rejected with its reason, not fatal."""

_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)


def is_jinja(template: str) -> bool:
    return "{{" in template or "{%" in template


@cache
def _template(source: str):
    try:
        return _ENV.from_string(source)
    except TemplateError as e:
        raise UserError(f"prompt template {source!r} is not valid Jinja: {e}") from None


@cache
def _expression(source: str):
    try:
        return _ENV.compile_expression(source, undefined_to_none=False)
    except TemplateError as e:
        raise UserError(f"expression {source!r} is not valid Jinja: {e}") from None


def fields(template: str = "", expression: str = "") -> list[str]:
    """Record fields a template or expression reads (for the missing-column check)."""
    if expression:
        return sorted(meta.find_undeclared_variables(_ENV.parse("{{ " + expression + " }}")) - {"w"})
    if is_jinja(template):
        return sorted(meta.find_undeclared_variables(_ENV.parse(template)) - {"w"})
    return template_fields(template)


def render(template: str, record: dict, words: dict | None = None) -> str:
    if not is_jinja(template):
        return fill_template(template, record)
    return _template(template).render(**record, w=words or {})


def evaluate(expression: str, record: dict, words: dict | None = None):
    return _expression(expression)(**record, w=words or {})
