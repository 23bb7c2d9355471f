"""`polyglot-llama annotate import`: answer pairs made elsewhere, as items to compare.

Reads the common preference layouts that `reward` reads (``prompt`` + ``chosen``/``rejected``, or two full
transcripts, or Anthropic-HH strings). Any preference those files carry is ignored on purpose: annotators
see the two answers in a seeded random order and label them afresh. Unusable records are skipped, counted
and written next to the database with their reason; a rerun adds only records not yet imported.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from ..io import RejectCounter, write_jsonl
from ..languages import normalize_language
from ..rlhf.generation import derive_seed
from ..train.reward_data import load_pairs
from .prepare import check_overlap, required_labels
from .store import Store


@dataclass
class ImportConfig:
    db: str
    """The annotation database (SQLite file; created if missing)."""
    pairs: list[str] = field(default_factory=list)
    """Pair files (JSONL/Parquet, globs) in the chosen/rejected layout."""
    default_lang: str = "en"
    """Language of records without a "lang" key."""
    overlap: float = 0.1
    """Share of items given to two annotators, for agreement statistics."""
    seed: int = 0
    """Seed of the A/B order and of the overlap draw."""

    def __post_init__(self):
        self.default_lang = normalize_language(self.default_lang)
        check_overlap(self.overlap)


def run(cfg: ImportConfig) -> dict:
    rejects = RejectCounter()
    pairs = load_pairs(cfg.pairs, rejects, default_lang=cfg.default_lang)
    store = Store(cfg.db, create=True)
    done = store.keys()
    added = 0
    with store.transaction() as db:
        for pair in pairs:
            key = f"import:{Path(pair.file).name}:{pair.record}"
            if key in done:
                continue
            answers = [pair.chosen, pair.rejected]
            random.Random(derive_seed(cfg.seed, "order", key)).shuffle(answers)
            store.add_item(db, pair.lang, "safety" if pair.is_safety else "helpfulness", pair.prompt, *answers,
                           source_a="import", source_b="import", required=required_labels(key, cfg.overlap, cfg.seed),
                           key=key)
            added += 1
    rejects_file = Path(cfg.db).with_suffix(".import_rejects.jsonl")
    if rejects.count:
        write_jsonl(rejects_file, rejects.rejected)
    print(f"annotate import: {added} new items from {len(pairs)} pairs, {rejects.count} records skipped"
          + (f" (see {rejects_file})" if rejects.count else ""))
    return {"db": cfg.db, "pairs": len(pairs), "added": added, "rejected": rejects.by_reason()}
