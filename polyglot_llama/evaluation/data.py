"""Task data: JSONL/Parquet examples grouped by language, with every unusable record counted.

A record missing a column the task needs, or a language the task lists that has no examples, does not stop
the run: it is counted in the task's ``problems`` (reason → count) and the records are written to the
rejects file next to the results, with file, record number and reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import UserError
from ..io import RejectCounter, expand_inputs
from ..languages import normalize_language
from .layouts import flores_records, iter_layout_records, language_from_path

DATA_ROOT = "{data_root}"


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
    lang_from_path: str = ""
    """Regex whose first group is the language in each file's path, for layouts with a folder or file per
    language and no language column (XNLI: '/(\\w+)/test'); overrides lang_field."""
    columns: list[str] = field(default_factory=list)
    """Field names of headerless CSV/TSV files (MGSM: [question, answer_number])."""
    layout: Literal["records", "flores"] = "records"
    """records: one example per row; flores: FLORES-200 text files (<lang_Script>.<split>), aligned by line."""
    flores_source: str = "eng_Latn"
    """layout flores: the source-language file's code; every other file is a translation target."""

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
        self.files = [f if Path(f).is_absolute() or f.startswith(DATA_ROOT) else str(base_dir / f) for f in self.files]

    def set_data_root(self, root: str, where: str) -> None:
        """Put the user's folder of published benchmark files in place of {data_root}."""
        if any(f.startswith(DATA_ROOT) for f in self.files) and not root:
            raise UserError(f"{where} reads the published benchmark files under {DATA_ROOT}; give --data-root DIR")
        self.files = [str(Path(root).expanduser()) + f[len(DATA_ROOT):] if f.startswith(DATA_ROOT) else f for f in self.files]

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
    if spec.layout == "flores":
        sources = [(spec.files[0], flores_records(spec.paths(), spec.flores_source, rejects))]
    else:
        sources = [(path, iter_layout_records(path, spec.columns, rejects)) for path in spec.paths()]
    for path, records in sources:
        path_lang = language_from_path(path, spec.lang_from_path) if spec.lang_from_path else None
        if spec.lang_from_path and path_lang is None:
            rejects.add(path, 0, f"no language in the path (lang_from_path {spec.lang_from_path!r})", path)
            continue
        for number, record in enumerate(records, start=1):
            missing = [name for name in required if record.get(name) in (None, "", [])]
            if missing:
                rejects.add(path, number, f"missing column '{missing[0]}'", str(record))
                continue
            lang = path_lang or record_language(record, spec)
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
