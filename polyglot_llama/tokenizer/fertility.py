"""`polyglot-llama tokenizer fertility`: how many tokens each tokenizer spends per language.

Per language (the records' ``lang`` field) and tokenizer: tokens per word, tokens per character, bytes per
token, the share of tokens that are only part of a character (byte-fallback tokens of SentencePiece, pieces
that are not valid UTF-8 on their own in byte-level BPE: the same measure for every family) and, on parallel text, tokens relative to English (Petrov et al. 2023's
"tokenization premium"). Written as a terminal table, ``fertility.json``, ``fertility.md`` and a bar chart
``fertility.png``.

Words: whitespace-separated units, which for Korean are eojeol (a word plus its particles). Chinese,
Japanese, Thai, Lao, Khmer, Burmese and Tibetan do not separate words by spaces, so there a "word" is one
letter or digit character (punctuation and spaces excluded): tokens/word then reads as tokens per character
of running text. Characters are Unicode code points, bytes are UTF-8 bytes. Records are paired with their
English counterpart by ``id`` with any ``<lang>-`` / ``<lang>_`` prefix removed (``ko-001`` ↔ ``en-001``);
the English ratio uses only paired records and is left out where there are none. "vs 1st" is each
tokenizer's token count over the first tokenizer's, on the same text (after / before an extension).
Unreadable records (bad JSON, no text field, invalid UTF-8) and empty ones are counted in the report and
written with their reason to ``rejected.jsonl``; none is dropped silently.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from tokenizers import Tokenizer
from tqdm import tqdm

from ..config import write_resolved_config
from ..errors import UserError
from ..io import RejectCounter, atomic_path, expand_inputs, iter_records, write_json, write_jsonl, write_text
from ..languages import language_name, normalize_language
from .families import partial_character_ids

CHARACTER_WORD_LANGS = {"zh", "ja", "th", "lo", "km", "my", "bo", "yue"}
METRICS = ("tokens_per_word", "tokens_per_char", "bytes_per_token", "partial_char_share", "en_ratio", "vs_first")
HEADERS = ("tok/word", "tok/char", "bytes/tok", "partial", "vs en", "vs 1st")


@dataclass
class FertilityConfig:
    tokenizer: list[str] = field(default_factory=list)
    """Tokenizer directories to compare (repeat --tokenizer, e.g. the base and the extended one)."""
    input: list[str] = field(default_factory=list)
    """Text: globs of JSONL/Parquet records with ``text`` and ``lang`` (and ``id`` for parallel text)."""
    output: str = "fertility"
    """Directory for fertility.json, fertility.md and fertility.png."""
    labels: list[str] = field(default_factory=list)
    """A short name per tokenizer for the table and chart; default: the directory names."""
    text_field: str = "text"
    """Name of the text field."""
    lang_field: str = "lang"
    """Name of the language field."""
    id_field: str = "id"
    """Name of the record id used to pair parallel text with English."""
    default_lang: str = "und"
    """Language of records that have no language field."""
    max_records_per_lang: int = 0
    """Use at most this many records per language (0 = all)."""

    def __post_init__(self):
        if not self.tokenizer:
            raise UserError("key 'tokenizer' is required: one or more tokenizer directories (--tokenizer A --tokenizer B)")
        if not self.input:
            raise UserError("key 'input' is required: JSONL/Parquet text with a 'lang' field")
        if self.labels and len(self.labels) != len(self.tokenizer):
            raise UserError(f"key 'labels' has {len(self.labels)} names for {len(self.tokenizer)} tokenizers; give one per tokenizer")
        if self.max_records_per_lang < 0:
            raise UserError("key 'max_records_per_lang' must be 0 (all) or positive")


def count_words(text: str, lang: str) -> int:
    if lang in CHARACTER_WORD_LANGS:
        return sum(1 for c in text if unicodedata.category(c)[0] in "LN")
    return len(text.split())


def parallel_key(record_id, lang: str) -> str | None:
    if record_id is None:
        return None
    return re.sub(rf"^{re.escape(lang)}[-_]", "", str(record_id))


def partial_token_ids(directory: str) -> set[int]:
    """Ids of tokens that are only part of a character (see `families.partial_character_ids`)."""
    return partial_character_ids(json.loads((Path(directory) / "tokenizer.json").read_text(encoding="utf-8")))


def read_languages(cfg: FertilityConfig, rejects: RejectCounter) -> dict[str, list[dict]]:
    by_lang: dict[str, list[dict]] = defaultdict(list)
    for record in iter_records(expand_inputs(cfg.input), rejects, text_field=cfg.text_field):
        lang = str(record.get(cfg.lang_field) or cfg.default_lang)
        try:
            lang = normalize_language(lang) if lang != "und" else lang
        except UserError:  # an unknown label is reported under its own spelling rather than dropped
            lang = lang.strip()
        if not record[cfg.text_field].strip():
            # iter_records gives no position for a parsed record; the raw record identifies it
            rejects.add(",".join(cfg.input), 0, "empty text", json.dumps(record, ensure_ascii=False))
            continue
        if cfg.max_records_per_lang and len(by_lang[lang]) >= cfg.max_records_per_lang:
            continue
        by_lang[lang].append({"text": record[cfg.text_field], "key": parallel_key(record.get(cfg.id_field), lang)})
    if not by_lang:
        raise UserError(f"{cfg.input}: no text to measure ({rejects.count} records rejected: {rejects.by_reason()})")
    return dict(sorted(by_lang.items(), key=lambda kv: (kv[0] != "en", kv[0])))


def measure(directory: str, by_lang: dict[str, list[dict]]) -> dict[str, dict]:
    """Metrics of one tokenizer for every language."""
    if not (Path(directory) / "tokenizer.json").is_file():
        raise UserError(f"{directory}: no tokenizer.json; give a Hugging Face tokenizer directory")
    tokenizer = Tokenizer.from_file(str(Path(directory) / "tokenizer.json"))
    partial_ids = partial_token_ids(directory)
    counts: dict[str, list[int]] = {}
    stats: dict[str, dict] = {}
    for lang, records in tqdm(by_lang.items(), desc=f"fertility {Path(directory).name}", leave=False, disable=None):
        encodings = tokenizer.encode_batch([r["text"] for r in records], add_special_tokens=False)
        counts[lang] = [len(e.ids) for e in encodings]
        tokens = sum(counts[lang])
        words = sum(count_words(r["text"], lang) for r in records)
        chars = sum(len(r["text"]) for r in records)
        n_bytes = sum(len(r["text"].encode("utf-8")) for r in records)
        partial = sum(1 for e in encodings for i in e.ids if i in partial_ids)
        stats[lang] = {
            "records": len(records), "words": words, "chars": chars, "bytes": n_bytes, "tokens": tokens,
            "tokens_per_word": tokens / words if words else None, "tokens_per_char": tokens / chars,
            "bytes_per_token": n_bytes / tokens if tokens else None, "partial_char_share": partial / tokens if tokens else 0.0,
            "en_ratio": None, "parallel_records": 0,
        }
    if "en" in by_lang:
        english = {r["key"]: n for r, n in zip(by_lang["en"], counts["en"]) if r["key"] is not None}
        for lang, records in by_lang.items():
            pairs = [(n, english[r["key"]]) for r, n in zip(records, counts[lang]) if r["key"] in english]
            if pairs and sum(e for _, e in pairs):
                stats[lang]["en_ratio"] = sum(n for n, _ in pairs) / sum(e for _, e in pairs)
                stats[lang]["parallel_records"] = len(pairs)
    return stats


def _cell(metric: str, value) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}%" if metric == "partial_char_share" else f"{value:.2f}"


def format_table(results: dict[str, dict[str, dict]], markdown: bool = False) -> str:
    labels = list(results)
    langs = list(next(iter(results.values())))
    header = ("lang", "tokenizer") + HEADERS
    rows = [(f"{lang} {language_name(lang)}" if i == 0 else "", label) + tuple(_cell(m, results[label][lang][m]) for m in METRICS)
            for lang in langs for i, label in enumerate(labels)]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"
    widths = [max(len(str(r[c])) for r in rows + [header]) for c in range(len(header))]
    fmt = lambda r: "  ".join(str(v).ljust(w) if c < 2 else str(v).rjust(w) for c, (v, w) in enumerate(zip(r, widths)))
    return "\n".join([fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows])


def plot(results: dict[str, dict[str, dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels, langs = list(results), list(next(iter(results.values())))
    panels = [("tokens_per_word", "tokens per word"), ("en_ratio", "tokens relative to English"),
              ("partial_char_share", "share of partial-character tokens")]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4))
    x, width = np.arange(len(langs)), 0.8 / len(labels)
    for ax, (metric, title) in zip(axes, panels):
        for k, label in enumerate(labels):
            values = [results[label][lang][metric] or 0.0 for lang in langs]
            ax.bar(x + (k - (len(labels) - 1) / 2) * width, values, width, label=label)
        ax.set_xticks(x, langs)
        ax.set_title(title)
    axes[0].legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def run(cfg: FertilityConfig) -> dict:
    labels = cfg.labels or [Path(t).resolve().name for t in cfg.tokenizer]
    labels = [label if labels.count(label) == 1 else f"{label}#{i}" for i, label in enumerate(labels)]
    rejects = RejectCounter()
    by_lang = read_languages(cfg, rejects)
    results = {label: measure(directory, by_lang) for label, directory in zip(labels, cfg.tokenizer)}
    first = results[labels[0]]
    for stats in results.values():  # token count relative to the first tokenizer (e.g. the base), same text
        for lang, row in stats.items():
            row["vs_first"] = row["tokens"] / first[lang]["tokens"] if first[lang]["tokens"] else None
    output = Path(cfg.output)
    write_json(output / "fertility.json", {
        "tokenizers": dict(zip(labels, cfg.tokenizer)), "results": results,
        "records_measured": sum(len(r) for r in by_lang.values()), "rejected_records": rejects.by_reason(),
        "word_definition": {"characters (letters and digits)": sorted(CHARACTER_WORD_LANGS), "whitespace-separated": "all others (eojeol for ko)"},
    })
    write_text(output / "fertility.md", format_table(results, markdown=True))
    plot(results, output / "fertility.png")
    write_resolved_config(cfg, output, "tokenizer fertility")
    if rejects.count:
        write_jsonl(output / "rejected.jsonl", rejects.rejected)
    print(format_table(results))
    if rejects.count:
        print(f"{rejects.count} records rejected ({rejects.by_reason()}); see {output / 'rejected.jsonl'}")
    return {"output": str(output), "json": str(output / "fertility.json"), "chart": str(output / "fertility.png"),
            "languages": list(by_lang), "tokenizers": dict(zip(labels, cfg.tokenizer)),
            "records_measured": sum(len(r) for r in by_lang.values()), "rejected_records": rejects.by_reason()}
