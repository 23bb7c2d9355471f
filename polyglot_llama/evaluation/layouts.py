"""Published benchmark layouts read as task records: CSV/TSV (with or without a header), the language in
the file path (one folder or file per language), and FLORES-200's aligned one-sentence-per-line files.

JSONL and Parquet go through `io.iter_records`; this module adds what the published releases need:
KMMLU ships CSV, MGSM headerless TSV, XNLI/PAWS-X/Global-MMLU one folder per language with no language
column, FLORES-200 ``<split>/<lang_Script>.<split>`` text files whose line i is the same sentence in
every language.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

from ..errors import UserError
from ..io import RejectCounter, iter_records
from ..languages import language_name, normalize_language

csv.field_size_limit(1 << 24)  # long passages (Belebele-style CSV exports) exceed the 128 KiB default


def iter_table(path: str, columns: list[str], rejects: RejectCounter) -> Iterator[dict]:
    """Rows of a CSV/TSV file as dicts: the header names the fields, or ``columns`` does for headerless files."""
    delimiter = "\t" if path.endswith((".tsv", ".tsv.gz")) else ","
    with open(path, encoding="utf-8", newline="") as f:
        quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL  # MGSM's TSV has bare quotes
        reader = csv.DictReader(f, fieldnames=columns or None, delimiter=delimiter, quoting=quoting)
        for row_no, row in enumerate(reader, start=1 if columns else 2):
            if None in row or any(v is None for v in row.values()):
                rejects.add(path, row_no, "wrong number of columns", str(row))
                continue
            yield row


def iter_layout_records(path: str, columns: list[str], rejects: RejectCounter) -> Iterator[dict]:
    if path.endswith((".csv", ".tsv")):
        yield from iter_table(path, columns, rejects)
    else:
        yield from iter_records([path], rejects, text_field=None)


def language_from_path(path: str, pattern: str) -> str | None:
    """The language named by the path, e.g. pattern ``/(\\w+)/test`` on xnli/de/test-0.parquet → de."""
    match = re.search(pattern, path)
    if not match:
        return None
    try:
        return normalize_language(match.group(1))
    except UserError:
        return None


def flores_records(files: list[str], source: str, rejects: RejectCounter) -> list[dict]:
    """{lang, source_lang, target_lang, source, target} per line of every non-source file, aligned by line."""
    by_code = {Path(f).name.split(".")[0]: f for f in files}
    if source not in by_code:
        raise UserError(f"FLORES source {source!r} has no file among {len(files)} (expected {source}.dev or "
                        f"{source}.devtest next to the targets); set data.flores_source")
    sources = Path(by_code[source]).read_text(encoding="utf-8").splitlines()
    records = []
    for code, path in sorted(by_code.items()):
        if code == source:
            continue
        targets = Path(path).read_text(encoding="utf-8").splitlines()
        if len(targets) != len(sources):
            rejects.add(path, 0, f"{len(targets)} lines where {source} has {len(sources)}: not aligned", path)
            continue
        lang = normalize_language(code)
        for src, tgt in zip(sources, targets):
            records.append({"lang": lang, "source_lang": language_name(normalize_language(source)),
                            "target_lang": language_name(lang), "source": src, "target": tgt})
    return records
