"""`polyglot-llama tokenizer extend`: add target-language pieces and merges to a base tokenizer.

1. Read the target text once to count characters (and records, for clear errors on an empty corpus).
2. Learn BPE merges on it with the `tokenizers` trainer, using the base's own normalisation and word
   boundaries, so learnt pieces have the base's form (``▁한국`` / ``Ġíķľ``).
3. `merge.plan_extension` appends the pieces the base lacks, with merges ranked after all old ones; the
   base's missing characters compete with merges by the tokens each saves.
4. Check the result with the real engine (every new piece reachable; the corpus sample round-trips and
   shrinks) and write a tokenizer directory that `AutoTokenizer` loads with the raw ids.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from ..config import write_resolved_config
from ..errors import UserError
from ..io import RejectCounter, atomic_path, expand_inputs, iter_records, read_json, write_json
from ..languages import normalize_language
from .families import BYTE_LEVEL, BaseTokenizer, components, byte_level_alphabet, load_base_tokenizer
from .merge import Extension, apply_extension, merge_application_counts, plan_extension, unreachable_pieces
from .train import AUTO_TOKENIZER_CLASS, llama_pre_tokenizer, llama_tokenizer_config

log = logging.getLogger(__name__)

# Config keys that make transformers rebuild or re-configure the tokenizer instead of using tokenizer.json.
_REBUILD_KEYS = ("tokenizer_class", "auto_map", "tokenizer_file", "legacy", "add_prefix_space", "from_slow")
_COPIED_FILES = ("special_tokens_map.json", "chat_template.jinja")
SAMPLE_CHECK_RECORDS = 200
ENCODE_BATCH = 1000


@dataclass
class TokenizerExtendConfig:
    base: str = ""
    """Base tokenizer directory (tokenizer.json): Llama-2-style SentencePiece BPE or byte-level BPE."""
    input: list[str] = field(default_factory=list)
    """Target-language text: globs of JSONL (``text``, optional ``lang``), Parquet or plain-text files."""
    new_tokens: int = 0
    """How many tokens to add (Llama-2-Ko added 14,336 to Llama 2's 32,000)."""
    output: str = ""
    """Directory to write the extended tokenizer (tokenizer.json, tokenizer_config.json, extension.json)."""
    lang: str = ""
    """Target language (e.g. ko). When set, records whose ``lang`` field names another language are skipped."""
    text_field: str = "text"
    """Name of the text field in JSONL/Parquet records."""
    lang_field: str = "lang"
    """Name of the language field in JSONL/Parquet records."""
    min_frequency: int = 2
    """A piece is learnt only from pairs seen at least this often in the input."""
    max_piece_chars: int = 16
    """Longest new piece, in characters."""
    allow_ascii_pieces: bool = False
    """Also add pieces made only of ASCII. Off by default: the base already handles ASCII (English, code,
    numbers) well, and with it off ASCII text provably keeps its ids."""

    def __post_init__(self):
        if not self.base:
            raise UserError("key 'base' is required: the tokenizer directory to extend")
        if not self.input:
            raise UserError("key 'input' is required: target-language text (JSONL, Parquet or plain text)")
        if not self.output:
            raise UserError("key 'output' is required: the directory to write the extended tokenizer")
        if self.new_tokens <= 0:
            raise UserError(f"key 'new_tokens' is {self.new_tokens}; give the number of tokens to add, e.g. --new-tokens 8000")
        if self.min_frequency < 1:
            raise UserError(f"key 'min_frequency' is {self.min_frequency}; it must be at least 1")
        if self.max_piece_chars < 2:
            raise UserError(f"key 'max_piece_chars' is {self.max_piece_chars}; it must be at least 2")
        if self.lang:
            self.lang = normalize_language(self.lang)


def _language_or_raw(code: str) -> str:
    try:
        return normalize_language(code)
    except UserError:  # not an ISO code: still "another language", counted under its own spelling
        return code.strip()


class TargetText:
    """The input records of the target language, re-readable (the trainer may need a second pass)."""

    def __init__(self, cfg: TokenizerExtendConfig):
        self.cfg = cfg
        self.files = expand_inputs(cfg.input)
        self.rejects = RejectCounter()
        self.other_languages: Counter = Counter()

    def __iter__(self) -> Iterator[str]:
        self.rejects, self.other_languages = RejectCounter(), Counter()
        for record in iter_records(self.files, self.rejects, text_field=self.cfg.text_field):
            lang = record.get(self.cfg.lang_field)
            if self.cfg.lang and isinstance(lang, str) and lang.strip():
                lang = _language_or_raw(lang)
                if lang != self.cfg.lang:
                    self.other_languages[lang] += 1
                    continue
            text = record[self.cfg.text_field]
            if text.strip():
                yield text


def count_characters(texts: TargetText) -> tuple[Counter, int, list[str]]:
    """Character counts, the number of records and the first records (kept for the checks at the end)."""
    counts: Counter = Counter()
    n_records = 0
    sample: list[str] = []
    for text in texts:
        counts.update(text)
        n_records += 1
        if len(sample) < SAMPLE_CHECK_RECORDS:
            sample.append(text)
    if n_records == 0:
        found = f"; records of other languages: {dict(texts.other_languages)}" if texts.other_languages else ""
        raise UserError(f"{texts.cfg.input}: no non-empty {texts.cfg.lang or 'input'} text to learn from "
                        f"({texts.rejects.count} records rejected: {texts.rejects.by_reason()}){found}; give target-language text")
    return counts, n_records, sample


def trainer_tokenizer(base: BaseTokenizer) -> Tokenizer:
    """An empty BPE whose normaliser and word boundaries match the base's, so learnt pieces fit it."""
    base_tokenizer = Tokenizer.from_file(str(base.path))
    scratch = Tokenizer(models.BPE())
    if base_tokenizer.normalizer is not None:
        scratch.normalizer = base_tokenizer.normalizer
    if base.family == BYTE_LEVEL:
        scratch.pre_tokenizer = base_tokenizer.pre_tokenizer
    elif base.legacy_sentencepiece:
        # Real Llama 2 files have no pre-tokenizer; SentencePiece still never learnt pieces across "▁"
        # or across digits, so learn ours with the same word boundaries.
        scratch.pre_tokenizer = llama_pre_tokenizer()
    else:
        metaspace = next(p for p in components(base.data["pre_tokenizer"]) if p["type"] == "Metaspace")
        scratch.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=metaspace.get("prepend_scheme", "always"), split=True),
            pre_tokenizers.Digits(individual_digits=True),
        ])
    return scratch


def learn_merges(base: BaseTokenizer, texts: TargetText, n_chars: int, n_merges: int,
                 cfg: TokenizerExtendConfig) -> tuple[list, dict[str, int], bool]:
    """BPE merges learnt on the target text (most frequent first), how often each fires on that text, and
    whether the trainer stopped at its size cap (rather than running out of pairs seen min_frequency times)."""
    scratch = trainer_tokenizer(base)
    byte_level = base.family == BYTE_LEVEL
    alphabet = 256 if byte_level else n_chars + 1  # + "▁"
    trainer = trainers.BpeTrainer(
        vocab_size=alphabet + n_merges, min_frequency=cfg.min_frequency, limit_alphabet=alphabet,
        initial_alphabet=list(byte_level_alphabet()) if byte_level else [], max_token_length=cfg.max_piece_chars,
        special_tokens=[], show_progress=sys.stderr.isatty(),
    )
    scratch.train_from_iterator(texts, trainer=trainer)
    learnt = json.loads(scratch.to_str())["model"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in learnt["merges"]]
    usage: Counter = Counter()
    batch: list[str] = []
    for text in texts:  # one more pass: final token counts, from which each merge's firing count follows
        batch.append(text)
        if len(batch) == ENCODE_BATCH:
            usage.update(t for e in scratch.encode_batch(batch, add_special_tokens=False) for t in e.tokens)
            batch = []
    usage.update(t for e in scratch.encode_batch(batch, add_special_tokens=False) for t in e.tokens)
    return merges, merge_application_counts(merges, usage), len(learnt["vocab"]) >= alphabet + n_merges


def build_extension(base: BaseTokenizer, texts: TargetText, cfg: TokenizerExtendConfig) -> tuple[Extension, int, list[str]]:
    char_counts, n_records, sample = count_characters(texts)
    n_chars = sum(1 for c, n in char_counts.items() if n >= cfg.min_frequency)
    # Many learnt pieces already exist in the base or are skipped: learn about twice what is asked for,
    # and learn more only if that still falls short while the trainer had more to give.
    n_merges = 2 * cfg.new_tokens + 1000
    while True:
        merges, merge_counts, capped = learn_merges(base, texts, n_chars, n_merges, cfg)
        ext = plan_extension(base, merges, char_counts, cfg.new_tokens, cfg.allow_ascii_pieces, cfg.min_frequency, merge_counts)
        learnt = len(ext.pieces) - len(ext.byte_chars_added)
        if learnt >= cfg.new_tokens or not capped:
            break
        n_merges *= 4
    if learnt < cfg.new_tokens:
        raise UserError(
            f"{cfg.input}: this text supports only {learnt} new tokens at min_frequency={cfg.min_frequency} "
            f"({n_records} records; skipped candidates: {dict(ext.skipped)}); lower --new-tokens to at most "
            f"{learnt} or give more {cfg.lang or 'target-language'} text"
        )
    return ext, n_records, sample


def write_tokenizer_dir(base: BaseTokenizer, tokenizer: Tokenizer, output: Path) -> None:
    """tokenizer.json plus a tokenizer_config.json that makes AutoTokenizer reproduce the raw ids."""
    output.mkdir(parents=True, exist_ok=True)
    with atomic_path(output / "tokenizer.json") as tmp:
        tokenizer.save(str(tmp), pretty=True)
    base_dir = base.path.parent
    config_file = base_dir / "tokenizer_config.json"
    if config_file.is_file():
        config = {k: v for k, v in read_json(config_file).items() if k not in _REBUILD_KEYS}
    else:
        config = llama_tokenizer_config() if base.family != BYTE_LEVEL else {}
    # Exact round trips through AutoTokenizer.decode too (the clean-up rewrites " ." to ".").
    config.update(tokenizer_class=AUTO_TOKENIZER_CLASS, clean_up_tokenization_spaces=False)
    write_json(output / "tokenizer_config.json", config)
    for name in _COPIED_FILES:
        if (base_dir / name).is_file():
            shutil.copy2(base_dir / name, output / name)


def check_extension(base: Tokenizer, extended: Tokenizer, ext: Extension, texts: list[str]) -> dict:
    """Engine-level checks; a failure here is a bug in this module, not a user mistake."""
    unreachable = unreachable_pieces(extended, ext.pieces)
    if unreachable:
        raise RuntimeError(f"extension produced unreachable pieces {unreachable[:5]}")
    before = after = 0
    for text in texts:
        old_ids = base.encode(text, add_special_tokens=False).ids
        new_ids = extended.encode(text, add_special_tokens=False).ids
        if base.decode(old_ids) == text and extended.decode(new_ids) != text:
            raise RuntimeError(f"extended tokenizer does not round-trip {text[:80]!r}")
        before, after = before + len(old_ids), after + len(new_ids)
    return {"sample_records": len(texts), "tokens_before": before, "tokens_after": after,
            "token_ratio": round(after / before, 4) if before else None}


def run(cfg: TokenizerExtendConfig) -> dict:
    base = load_base_tokenizer(cfg.base)
    texts = TargetText(cfg)
    ext, n_records, sample = build_extension(base, texts, cfg)
    extended = Tokenizer.from_str(json.dumps(apply_extension(base, ext)))
    check = check_extension(Tokenizer.from_file(str(base.path)), extended, ext, sample)

    output = Path(cfg.output)
    write_tokenizer_dir(base, extended, output)
    write_json(output / "extension.json", {
        "base": str(base.path.parent), "family": base.family, "old_vocab_size": ext.first_id,
        "new_vocab_size": ext.first_id + len(ext.pieces), "new_token_ids": ext.ids, "new_tokens": ext.pieces,
        "merges_added": len(ext.merges), "skipped_candidates": dict(ext.skipped), "sample_check": check,
        **_byte_note(ext),
    })
    write_resolved_config(cfg, output, "tokenizer extend")
    if ext.byte_chars_added or ext.byte_chars_left_out:
        log.info("base lacked %d byte characters: appended %d, left out %d that valid UTF-8 never contains",
                 len(ext.byte_chars_added) + len(ext.byte_chars_left_out), len(ext.byte_chars_added), len(ext.byte_chars_left_out))
    log.info("added %d tokens (%d merges); sample of %d records: %d -> %d tokens", len(ext.pieces), len(ext.merges),
             check["sample_records"], check["tokens_before"], check["tokens_after"])
    return {"output": str(output), "family": base.family, "old_vocab_size": ext.first_id,
            "new_vocab_size": ext.first_id + len(ext.pieces), "records": n_records,
            "rejected_records": texts.rejects.by_reason(), "other_language_records": dict(texts.other_languages),
            **_byte_note(ext), **check}


def _byte_note(ext: Extension) -> dict:
    """Which missing byte characters of a byte-level base were appended and which were left out (and why)."""
    if not (ext.byte_chars_added or ext.byte_chars_left_out):
        return {}
    table = byte_level_alphabet()
    hexes = lambda chars: [f"0x{table[c]:02x}" for c in chars]  # noqa: E731
    return {"byte_chars_added": hexes(ext.byte_chars_added), "byte_chars_left_out": hexes(ext.byte_chars_left_out),
            "byte_chars_note": "the base vocabulary lacked these byte characters; those valid UTF-8 can contain were "
                               "appended after the old vocabulary, the rest (never in valid UTF-8) left out"}
