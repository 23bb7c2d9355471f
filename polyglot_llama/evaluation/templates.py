"""Prompt templates: ``str.format`` fields filled from a record, with the fields listed for column checks."""

from __future__ import annotations

import string


def template_fields(template: str) -> list[str]:
    """Record fields a template reads, e.g. "{passage}\\n{question}" → ["passage", "question"]."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def fill_template(template: str, record: dict) -> str:
    return template.format(**{name: record[name] for name in template_fields(template)})
