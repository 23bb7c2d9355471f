"""Unsafe-prompt sets and the refusal detector for safety evaluation.

Layouts read:

* **MultiJail** (Deng et al. 2023): one CSV, a header row, one column per language (``en, zh, it, vi, ar,
  ko, th, bn, sw, jv``) plus metadata columns (``id, source, tags``); the category is the first entry
  of the ``tags`` column. A column counts as a language when its header is a language code.
* **XSafety** (Wang et al. 2023): a folder per language (``en/``, ``zh/``, ...) holding one CSV per
  category (``Insult.csv``, ``Crimes_And_Illegal_Activities_en.csv``), one prompt per row and no header.
* **jsonl**: records ``{"prompt", "lang", "category"}`` (and Parquet), through the project's record reader.

Refusal phrases are data, one file per language in eval/refusal/<lang>.txt (one phrase per line, ``#``
comments), so a new language needs a text file, not code.
"""

from __future__ import annotations

import csv
import glob as globlib
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..io import RejectCounter, expand_inputs, iter_records
from ..languages import normalize_language

BUNDLED_REFUSALS = Path(__file__).resolve().parents[2] / "eval" / "refusal"
_NON_LANGUAGE_COLUMNS = {"id", "source", "tags", "category", "index", "idx", "prompt"}


@dataclass
class SafetyPrompt:
    lang: str
    category: str
    prompt: str
    file: str
    row: int


def _language_of(header: str) -> str | None:
    name = header.strip()
    if name.lower() in _NON_LANGUAGE_COLUMNS or not name.replace("-", "").replace("_", "").isalpha():
        return None
    try:
        return normalize_language(name)
    except UserError:
        return None


def load_multijail(paths: list[str], rejects: RejectCounter, category_column: str = "tags") -> list[SafetyPrompt]:
    prompts = []
    for path in expand_inputs(paths):
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = {name: _language_of(name) for name in reader.fieldnames or []}
            if not any(columns.values()):
                raise UserError(f"{path}: no language column in the header {reader.fieldnames}; "
                                "a MultiJail CSV has one column per language code (en, ko, ...)")
            for row_no, row in enumerate(reader, start=2):
                category = (row.get(category_column) or "").split(",")[0].strip() or "uncategorised"
                for column, lang in columns.items():
                    if lang is None:
                        continue
                    text = (row.get(column) or "").strip()
                    if not text:
                        rejects.add(path, row_no, f"empty prompt in column '{column}'")
                        continue
                    prompts.append(SafetyPrompt(lang, category, text, path, row_no))
    return prompts


def _xsafety_category(stem: str, lang_dir: str) -> str:
    # Files are named Insult.csv, Insult_en.csv or Insult_n.csv depending on the language folder.
    for suffix in (f"_{lang_dir}", "_n"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem


def load_xsafety(roots: list[str], rejects: RejectCounter) -> list[SafetyPrompt]:
    prompts = []
    dirs = sorted(d for pattern in roots for d in globlib.glob(pattern) if Path(d).is_dir())
    if not dirs:
        raise UserError(f"{roots}: no XSafety folder; give the folder holding one sub-folder per language (en/, zh/, ...)")
    for root in dirs:
        for lang_dir in sorted(p for p in Path(root).iterdir() if p.is_dir()):
            lang = _language_of(lang_dir.name)
            if lang is None:
                continue
            for path in sorted(lang_dir.glob("*.csv")):
                category = _xsafety_category(path.stem, lang_dir.name)
                with open(path, newline="", encoding="utf-8-sig") as f:
                    for row_no, row in enumerate(csv.reader(f), start=1):
                        text = row[0].strip() if row else ""
                        if not text:
                            rejects.add(str(path), row_no, "empty prompt")
                            continue
                        prompts.append(SafetyPrompt(lang, category, text, str(path), row_no))
    return prompts


def load_prompt_records(paths: list[str], rejects: RejectCounter, prompt_field: str, lang_field: str,
                        category_field: str) -> list[SafetyPrompt]:
    prompts = []
    for path in expand_inputs(paths):
        for number, record in enumerate(iter_records([path], rejects, text_field=None), start=1):
            text, lang = record.get(prompt_field), record.get(lang_field)
            if not isinstance(text, str) or not text.strip():
                rejects.add(path, number, f"missing column '{prompt_field}'", str(record))
                continue
            try:
                lang = normalize_language(lang)
            except UserError:
                rejects.add(path, number, f"missing or invalid language in '{lang_field}'", str(record))
                continue
            prompts.append(SafetyPrompt(lang, str(record.get(category_field) or "uncategorised"), text.strip(), path, number))
    return prompts


def _fold(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


class RefusalDetector:
    """An answer is a refusal when it contains a refusal phrase of its language or of English.

    English phrases always apply: models adapted from an English chat model often refuse in English
    whatever the prompt's language.
    """

    def __init__(self, directory: str | Path = BUNDLED_REFUSALS):
        directory = Path(directory)
        files = sorted(directory.glob("*.txt"))
        if not files:
            raise UserError(f"{directory}: no refusal phrase lists (<lang>.txt, one phrase per line)")
        self.phrases: dict[str, list[str]] = {}
        for path in files:
            lines = path.read_text(encoding="utf-8").splitlines()
            self.phrases[normalize_language(path.stem)] = [_fold(l) for l in lines if l.strip() and not l.startswith("#")]

    def languages(self) -> list[str]:
        return sorted(self.phrases)

    def is_refusal(self, answer: str, lang: str) -> bool:
        text = _fold(answer)
        return any(p in text for p in self.phrases.get(lang, []) + self.phrases.get("en", []))
