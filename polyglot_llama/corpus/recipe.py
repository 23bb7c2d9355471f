"""The `corpus build` config: a recipe (steps and their per-language parameters) plus where to run it.

Per-language parameters are typed keyword arguments, never strings of logic: every threshold takes either
one value or a mapping from language to value with an optional ``default``, e.g.
``min_doc_words: {default: 50, ja: 0}``. Defaults are datatrove's (Gopher / FineWeb for English); the
recipes in ``data_recipes/`` set per-language values from FineWeb-2's published configs.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import UserError
from ..languages import normalize_language

FILTER_STEPS = ("language", "foreign_paragraphs", "blocklist", "gopher_repetition", "fineweb_quality",
                "gopher_quality", "pii")
DEDUP_STEPS = ("exact_dedup", "minhash_dedup")
ALL_STEPS = FILTER_STEPS + DEDUP_STEPS


def _check_per_language(section: Any) -> None:
    """Normalise the language keys of every per-language mapping in ``section`` (``kor`` → ``ko``)."""
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if isinstance(value, dict):
            setattr(section, f.name, {
                key if key == "default" else normalize_language(key): v for key, v in value.items()
            })


def for_language(section: Any, language: str) -> dict[str, Any]:
    """``section``'s parameters for one language: mapping values resolved to ``language`` or ``default``."""
    out = {}
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if isinstance(value, dict):
            if language in value:
                value = value[language]
            elif "default" in value:
                value = value["default"]
            else:
                value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
                if isinstance(value, dict):
                    raise UserError(f"{f.name}: no value for language {language!r} and no 'default' entry")
        out[f.name] = value
    return out


@dataclass
class LidSection:
    model: str = ""
    """Path of a fastText LID model (lid.176.bin, GlotLID, OpenLID); empty = lid.176.ftz, fetched on first use."""
    threshold: float | dict[str, float] = 0.65
    """Minimum language_score to keep a document (FineWeb: 0.65 with lid.176); per language allowed."""
    min_script_ratio: float | dict[str, float] = 0.0
    """Minimum share of letters in the language's own script (e.g. Hangul for ko); 0 disables the check."""
    paragraph_threshold: float = 0.8
    """Step foreign_paragraphs: drop a line LID assigns to another language with at least this score."""
    paragraph_min_chars: int = 40
    """Step foreign_paragraphs: shorter lines are kept (too short for reliable LID)."""

    def __post_init__(self):
        _check_per_language(self)


@dataclass
class BlocklistSection:
    file: str = ""
    """Text file of blocked domains, one per line (# comments); subdomains are blocked too."""
    url_field: str = "url"
    """Input field holding the document's URL; documents without it pass."""


@dataclass
class GopherRepetitionSection:
    dup_line_frac: float | dict[str, float] = 0.3
    """Max share of lines that are duplicates of another line (Gopher, Rae et al. 2021, Table A1)."""
    dup_para_frac: float | dict[str, float] = 0.3
    """Max share of duplicate paragraphs."""
    dup_line_char_frac: float | dict[str, float] = 0.2
    """Max share of characters in duplicate lines."""
    dup_para_char_frac: float | dict[str, float] = 0.2
    """Max share of characters in duplicate paragraphs."""
    top_n_grams: list[list[float]] | dict[str, list[list[float]]] = field(
        default_factory=lambda: [[2, 0.2], [3, 0.18], [4, 0.16]])
    """[n, max share of characters in the most frequent word n-gram] pairs."""
    dup_n_grams: list[list[float]] | dict[str, list[list[float]]] = field(
        default_factory=lambda: [[5, 0.15], [6, 0.14], [7, 0.13], [8, 0.12], [9, 0.11], [10, 0.10]])
    """[n, max share of characters in repeated word n-grams] pairs."""

    def __post_init__(self):
        _check_per_language(self)


@dataclass
class GopherQualitySection:
    min_doc_words: int | dict[str, int] = 50
    """Minimum number of words (not counting punctuation tokens)."""
    max_doc_words: int | dict[str, int] = 100000
    """Maximum number of words."""
    min_avg_word_length: float | dict[str, float] = 3
    """Minimum mean word length in characters (1 for CJK, whose words are single characters here)."""
    max_avg_word_length: float | dict[str, float] = 10
    """Maximum mean word length in characters."""
    max_symbol_word_ratio: float | dict[str, float] = 0.1
    """Maximum ratio of '#' or ellipses to words."""
    max_bullet_lines_ratio: float | dict[str, float] = 0.9
    """Maximum share of lines starting with a bullet."""
    max_ellipsis_lines_ratio: float | dict[str, float] = 0.3
    """Maximum share of lines ending with an ellipsis."""
    max_non_alpha_words_ratio: float | dict[str, float] = 0.8
    """Minimum share of words containing a letter (datatrove's name for it)."""
    min_stop_words: int | dict[str, int] = 2
    """Minimum number of distinct stopwords present."""
    stop_words: list[str] | dict[str, list[str]] = field(
        default_factory=lambda: ["the", "be", "to", "of", "and", "that", "have", "with"])
    """Stopwords of the language (FineWeb-2 publishes one list per language)."""

    def __post_init__(self):
        _check_per_language(self)


@dataclass
class FineWebQualitySection:
    line_punct_thr: float | dict[str, float] = 0.12
    """Minimum share of lines ending in terminal punctuation."""
    line_punct_exclude_zero: bool = False
    """Keep documents with no line ending in punctuation at all."""
    short_line_thr: float | dict[str, float] = 0.67
    """Maximum share of short lines."""
    short_line_length: int | dict[str, int] = 30
    """A line of at most this many characters is short."""
    char_duplicates_ratio: float | dict[str, float] = 0.01
    """Maximum share of characters in duplicated lines."""
    new_line_ratio: float | dict[str, float] = 0.3
    """Maximum newlines per word (list-like pages)."""

    def __post_init__(self):
        _check_per_language(self)


@dataclass
class PiiSection:
    emails: bool = True
    """Mask e-mail addresses."""
    ips: bool = True
    """Mask public IP addresses."""
    phones: bool = True
    """Mask phone numbers."""


@dataclass
class MinhashSection:
    n_grams: int = 5
    """Word n-gram (shingle) size (FineWeb-2: 5)."""
    num_buckets: int = 14
    """LSH bands (FineWeb-2: 14); the bucket stage runs one task per bucket."""
    hashes_per_bucket: int = 8
    """Hashes per band (FineWeb-2: 8): ~0.72 Jaccard similarity is the 50 % detection point."""
    seed: int = 1
    """Seed of the hash permutations."""


@dataclass
class SlurmSection:
    partition: str = ""
    """Slurm partition (required with executor: slurm)."""
    time: str = "24:00:00"
    """Time limit per job."""
    cpus_per_task: int = 1
    """CPUs per task."""
    mem_per_cpu_gb: int = 2
    """Memory per CPU in GB."""
    env_command: str = ""
    """Shell command run before each job, e.g. 'source .venv/bin/activate'."""


@dataclass
class RaySection:
    address: str = ""
    """Ray cluster to join: "" = the one started on this machine by `ray start` (else a new local one),
    "auto" = a running cluster only, or "HOST:6379"."""
    cpus_per_task: int = 1
    """CPUs per Ray task."""
    mem_per_cpu_gb: float = 2
    """Memory per CPU in GB."""


@dataclass
class CorpusBuildConfig:
    input: list[str] = field(default_factory=list)
    """Input files, globs or folders: WARC/WET (.gz), JSONL (plain/.gz/.zst), Parquet or plain text."""
    output: str = ""
    """Output directory: kept/, rejected/, stats.json, stats.md."""
    languages: list[str] = field(default_factory=list)
    """Languages to keep (ISO 639-1/-3 codes such as ko or kor)."""
    steps: list[str] = field(default_factory=lambda: [
        "language", "gopher_repetition", "fineweb_quality", "gopher_quality", "pii", "exact_dedup", "minhash_dedup"])
    """Steps in order; language ID tagging always runs first. Known: language, foreign_paragraphs, blocklist,
    gopher_repetition, fineweb_quality, gopher_quality, pii, exact_dedup, minhash_dedup (dedup steps last)."""
    text_field: str = "text"
    """Field of the input records holding the text."""
    id_field: str = "id"
    """Field of the input records holding a document id (optional)."""
    executor: Literal["local", "slurm", "ray"] = "local"
    """Where to run: local processes, Slurm jobs or a Ray cluster."""
    tasks: int = -1
    """Number of shards the input is split into (one task each); -1 = one per CPU core of this machine.
    The resolved number is part of the recipe: a resumed run must use the same."""
    workers: int = -1
    """Tasks run at once locally (or Ray/Slurm jobs at once); -1 = one per CPU core (at most tasks)."""
    parquet: bool = False
    """Also write kept documents as Parquet next to the JSONL.gz shards."""
    resume: bool = True
    """Skip tasks a previous run of the same recipe finished; false = delete old outputs and start over."""
    segmenter: Literal["datatrove", "datatrove_eojeol", "builtin"] = "datatrove"
    """Word splitting for the quality filters: datatrove's per-language segmenters, as FineWeb-2 (Kiwi ko,
    spaCy+SudachiPy ja, spaCy+jieba zh, PyThaiNLP th); datatrove_eojeol (the same, but Kiwi per Korean word,
    memoised: faster, ~2 % of Korean words differ); or builtin (one token per Han/Hangul character)."""
    lid: LidSection = field(default_factory=LidSection)
    """Language identification."""
    blocklist: BlocklistSection = field(default_factory=BlocklistSection)
    """Domain blocklist."""
    gopher_repetition: GopherRepetitionSection = field(default_factory=GopherRepetitionSection)
    """Gopher repetition filter."""
    fineweb_quality: FineWebQualitySection = field(default_factory=FineWebQualitySection)
    """FineWeb line-level quality filter."""
    gopher_quality: GopherQualitySection = field(default_factory=GopherQualitySection)
    """Gopher quality filter."""
    pii: PiiSection = field(default_factory=PiiSection)
    """PII masking."""
    minhash: MinhashSection = field(default_factory=MinhashSection)
    """MinHash near-duplicate removal."""
    slurm: SlurmSection = field(default_factory=SlurmSection)
    """Slurm settings (executor: slurm)."""
    ray: RaySection = field(default_factory=RaySection)
    """Ray settings (executor: ray)."""

    def __post_init__(self):
        if not self.languages:
            raise UserError("languages: give at least one language to keep, e.g. languages: [ko]")
        self.languages = list(dict.fromkeys(normalize_language(code) for code in self.languages))
        unknown = [s for s in self.steps if s not in ALL_STEPS]
        if unknown:
            raise UserError(f"steps: unknown step {unknown[0]!r}; known steps: {', '.join(ALL_STEPS)}")
        if len(set(self.steps)) != len(self.steps):
            raise UserError("steps: a step is listed twice; list each step once")
        first_dedup = min((i for i, s in enumerate(self.steps) if s in DEDUP_STEPS), default=len(self.steps))
        if any(s in FILTER_STEPS for s in self.steps[first_dedup:]):
            raise UserError("steps: dedup steps run over the whole filtered corpus; list them after every filter")
        if "blocklist" in self.steps and not self.blocklist.file:
            raise UserError("blocklist.file: the blocklist step needs a file of domains (or drop it from steps)")
        if self.tasks == -1:
            self.tasks = cpu_cores()
        if self.tasks < 1:
            raise UserError(f"tasks: must be -1 (one per core) or at least 1, not {self.tasks}")
        if self.workers == 0 or self.workers < -1:
            raise UserError(f"workers: must be -1 (one per core) or a positive number, not {self.workers}")
        if self.executor == "slurm" and not self.slurm.partition:
            raise UserError("slurm.partition: executor slurm needs a partition, e.g. --slurm.partition cpu")
        if self.minhash.n_grams < 1 or self.minhash.num_buckets < 1 or self.minhash.hashes_per_bucket < 1:
            raise UserError("minhash: n_grams, num_buckets and hashes_per_bucket must be positive")

    @property
    def local_workers(self) -> int:
        return min(self.tasks, cpu_cores() if self.workers == -1 else self.workers)


def cpu_cores() -> int:
    """CPU cores this process may use (its affinity mask, e.g. a Slurm allocation), not the machine's total."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
