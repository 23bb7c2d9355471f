"""`polyglot-llama annotate export`: labels → the preference JSONL that `reward` and `dpo` read.

Split as Llama 2 split its data: comparisons on helpfulness prompts train the helpfulness RM
(``helpfulness.jsonl``), those on adversarial prompts the safety RM (``safety.jsonl``, ``is_safety`` true);
every record keeps its strength and safety bin. Each label is one pair (an item labelled by two annotators
gives two). Flagged labels are left out unless asked for, and counted. Prompts written while no model was
attached go to ``prompts.jsonl``, ready for `annotate prepare`. All files are written atomically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..config import write_resolved_config
from ..io import write_json, write_jsonl
from .store import Store


@dataclass
class ExportConfig:
    db: str
    """The annotation database."""
    output: str
    """Directory for helpfulness.jsonl, safety.jsonl, prompts.jsonl and export.json."""
    include_flagged: bool = False
    """Also export labels whose annotator flagged the item (broken, offensive, wrong language...)."""


def pair_record(row) -> dict:
    chosen, rejected = ("a", "b") if row["choice"] == "a" else ("b", "a")
    return {"prompt": json.loads(row["dialog"]), "chosen": row[f"answer_{chosen}"], "rejected": row[f"answer_{rejected}"],
            "lang": row["lang"], "strength": row["strength"], "is_safety": row["kind"] == "safety",
            "safety_label": row["safety"], "item": row["item_id"], "label": row["id"], "annotator": row["annotator"],
            "source_chosen": row[f"source_{chosen}"], "source_rejected": row[f"source_{rejected}"]}


def run(cfg: ExportConfig) -> dict:
    store = Store(cfg.db)
    output = Path(cfg.output)
    write_resolved_config(cfg, output, "annotate export")
    rows = store.labelled()
    kept = [r for r in rows if cfg.include_flagged or not r["flagged"]]
    counts = {}
    for kind in ("helpfulness", "safety"):
        records = [pair_record(r) for r in kept if r["kind"] == kind]
        counts[kind] = write_jsonl(output / f"{kind}.jsonl", records)
    prompts = [{"messages": json.loads(p["dialog"]), "lang": p["lang"], "safety": p["kind"] == "safety"}
               for p in store.pending_prompts()]
    counts["prompts"] = write_jsonl(output / "prompts.jsonl", prompts)
    summary = {"db": cfg.db, "output": str(output), "pairs": counts, "labels": len(rows),
               "flagged_left_out": len(rows) - len(kept)}
    write_json(output / "export.json", summary)
    print(f"annotate export: {counts['helpfulness']} helpfulness and {counts['safety']} safety pairs, "
          f"{counts['prompts']} queued prompts, {len(rows) - len(kept)} flagged labels left out → {output}")
    return summary
