"""Task data: JSONL/Parquet examples grouped by language, with every unusable record counted.

A record missing a column the task needs, or a language the task lists that has no examples, does not stop
the run: it is counted in the task's ``problems`` (reason → count) and the records are written to the
rejects file next to the results, with file, record number and reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..io import RejectCounter, expand_inputs, iter_records
from ..languages import normalize_language


@dataclass
class DataSpec:
    files: list[str] = field(default_factory=list)
    """Data files or globs (JSONL, JSONL.gz/.zst, Parquet; CSV for safety sets); relative paths are relative to the YAML file."""
    lang_field: str = "lang"
    """Field holding each record's language code."""
    default_lang: str = ""
    """Language of records without lang_field (empty: such records are counted as problems)."""
    languages: list[str] = field(default_factory=list)
    """Languages to evaluate (empty: all found). A listed language without examples is reported."""
    limit: int = 0
    """At most this many examples per language (0 = all); for quick runs."""

    def __post_init__(self):
        if not self.files:
            raise UserError("key 'data.files' is required: the task's data files or globs")
        if self.limit < 0:
            raise UserError(f"key 'data.limit' is {self.limit}; use 0 (all) or a positive count")
        self.languages = [normalize_language(code) for code in self.languages]
        if self.default_lang:
            self.default_lang = normalize_language(self.default_lang)

    def resolve(self, base_dir: Path) -> None:
        """Make relative file paths relative to the YAML file that named them."""
        self.files = [f if Path(f).is_absolute() else str(base_dir / f) for f in self.files]

    def paths(self) -> list[str]:
        return expand_inputs(self.files)


def record_language(record: dict, spec: DataSpec) -> str | None:
    value = record.get(spec.lang_field) or spec.default_lang
    if not isinstance(value, str) or not value:
        return None
    try:
        return normalize_language(value)
    except UserError:
        return None


def load_by_language(spec: DataSpec, required: list[str], rejects: RejectCounter) -> dict[str, list[dict]]:
    """{lang: [records]} in file order; records lacking a required column or a language are rejected."""
    by_lang: dict[str, list[dict]] = {lang: [] for lang in spec.languages}
    for path in spec.paths():
        for number, record in enumerate(iter_records([path], rejects, text_field=None), start=1):
            missing = [name for name in required if record.get(name) in (None, "", [])]
            if missing:
                rejects.add(path, number, f"missing column '{missing[0]}'", str(record))
                continue
            lang = record_language(record, spec)
            if lang is None:
                rejects.add(path, number, f"missing or invalid language in '{spec.lang_field}'", str(record))
                continue
            if spec.languages and lang not in spec.languages:
                continue
            bucket = by_lang.setdefault(lang, [])
            if not spec.limit or len(bucket) < spec.limit:
                bucket.append(record)
    return by_lang


def report_empty_languages(by_lang: dict[str, list], rejects: RejectCounter, where: str) -> list[str]:
    """Count each language with no examples as a problem; returns the languages that do have examples."""
    for lang, records in by_lang.items():
        if not records:
            rejects.add(where, 0, f"language '{lang}' has no examples")
    return [lang for lang, records in by_lang.items() if records]
