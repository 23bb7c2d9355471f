"""`polyglot-llama annotate prepare`: sample answer pairs for a prompt file into an annotation database.

Prompts are the JSONL/Parquet records that rejection sampling reads (``prompt`` or ``messages``, optional
``lang``, ``safety``: true for adversarial prompts, which become safety items). A rerun adds only prompts
that have no item yet, so an interrupted run resumes and a grown prompt file adds just its new prompts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import UserError
from ..io import write_jsonl
from ..languages import normalize_language
from ..rlhf.generation import derive_seed
from ..rlhf.prompts import load_prompts
from .pairs import PairGenerator, PairSourceConfig
from .store import Store


def required_labels(key: str, overlap: float, seed: int) -> int:
    """2 for about ``overlap`` of the items (for the agreement statistics), 1 for the rest; decided per item
    key so reruns agree."""
    return 2 if random.Random(derive_seed(seed, "overlap", key)).random() < overlap else 1


def check_overlap(overlap: float) -> None:
    if not 0 <= overlap <= 1:
        raise UserError(f"key 'overlap' is {overlap}; it must be a share in [0, 1]")


@dataclass
class PrepareConfig:
    db: str
    """The annotation database (SQLite file; created if missing)."""
    prompts: list[str] = field(default_factory=list)
    """Prompt files (JSONL/Parquet, globs): {"prompt": ...} or {"messages": [...]}, optional "lang", "safety"."""
    default_lang: str = "en"
    """Language of prompts without a "lang" key."""
    pair_source: PairSourceConfig = field(default_factory=PairSourceConfig)
    """The two answer sources: checkpoints and temperatures."""
    overlap: float = 0.1
    """Share of items given to two annotators, for agreement statistics."""
    batch_size: int = 32
    """Prompts sampled per step (each gives one answer from each source)."""

    def __post_init__(self):
        self.default_lang = normalize_language(self.default_lang)
        check_overlap(self.overlap)
        if not self.pair_source.enabled:
            raise UserError("key 'pair_source.model_a' is empty; give the checkpoint(s) to sample answers from")
        if self.batch_size < 1:
            raise UserError(f"key 'batch_size' is {self.batch_size}; it must be at least 1")


def run(cfg: PrepareConfig) -> dict:
    prompts, rejects = load_prompts(cfg.prompts, cfg.default_lang)
    store = Store(cfg.db, create=True)
    done = store.keys()
    todo = [p for p in prompts if f"prompt:{p.id}" not in done]
    generator = PairGenerator(cfg.pair_source) if todo else None
    added = 0
    with tqdm(total=len(todo), desc="annotate prepare", unit="prompt") as bar:
        for start in range(0, len(todo), cfg.batch_size):
            batch = todo[start:start + cfg.batch_size]
            pairs = generator.pairs(batch, rejects)
            with store.transaction() as db:  # one batch per transaction: a kill loses at most this batch
                for pair in pairs:
                    key = f"prompt:{pair.prompt.id}"
                    store.add_item(db, pair.prompt.lang, "safety" if pair.prompt.is_safety else "helpfulness",
                                   pair.prompt.messages, pair.answer_a, pair.answer_b, pair.source_a, pair.source_b,
                                   required=required_labels(key, cfg.overlap, cfg.pair_source.seed), key=key)
            added += len(pairs)
            bar.update(len(batch))
    rejects_file = Path(cfg.db).with_suffix(".prepare_rejects.jsonl")
    if rejects.count:
        write_jsonl(rejects_file, rejects.rejected)
    print(f"annotate prepare: {added} new pairs ({len(prompts) - len(todo)} prompts already had one), "
          f"{rejects.count} prompts skipped" + (f" (see {rejects_file})" if rejects.count else ""))
    return {"db": cfg.db, "prompts": len(prompts), "added": added, "already_present": len(prompts) - len(todo),
            "rejected": rejects.by_reason()}
