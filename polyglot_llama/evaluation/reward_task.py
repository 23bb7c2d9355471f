"""Task kind ``reward``: a reward-model checkpoint's pairwise accuracy per language, inside an eval suite.

The same scoring and summaries as `polyglot-llama reward eval`; the checkpoint under test (``--model``)
must be a reward model. Per-strength accuracy appears as a breakdown table in the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from ..errors import UserError
from ..io import RejectCounter
from .data import DataSpec, report_empty_languages
from .reward_eval import score_pairs, summarize_pairs


@dataclass
class RewardTask:
    name: str = ""
    """Task name in reports."""
    kind: Literal["reward"] = "reward"
    """Task kind."""
    data: DataSpec | None = None
    """Preference pairs: {files, languages, default_lang, limit} (prompt, chosen, rejected, optional strength, lang)."""

    PRIMARY: ClassVar[str] = "accuracy"
    HIGHER_IS_BETTER: ClassVar[bool] = True
    VERSION: ClassVar[int] = 1

    def __post_init__(self):
        if self.data is None:
            raise UserError(f"task '{self.name}': key 'data' is required (data: {{files: [...]}})")

    def evaluate(self, checkpoint, rejects: RejectCounter) -> dict:
        from ..train.reward_data import load_pairs

        model, tokenizer = checkpoint.reward_model()
        pairs = load_pairs(self.data.files, rejects, default_lang=self.data.default_lang or "und")
        by_lang: dict[str, list] = {lang: [] for lang in self.data.languages}
        for pair in pairs:
            if self.data.languages and pair.lang not in self.data.languages:
                continue
            bucket = by_lang.setdefault(pair.lang, [])
            if not self.data.limit or len(bucket) < self.data.limit:
                bucket.append(pair)
        languages = report_empty_languages(by_lang, rejects, self.data.files[0])
        kept = [pair for lang in languages for pair in by_lang[lang]]
        scores = score_pairs(model, tokenizer, kept, checkpoint.runtime.batch_size, checkpoint.runtime.max_length)
        summary = summarize_pairs(kept, scores)
        return {"languages": summary["languages"], "breakdowns": {"strength": summary["strength"]},
                "predictions": [{"file": Path(p.file).name, "record": p.record, "lang": p.lang, "strength": p.strength,
                                 "chosen_score": c, "rejected_score": r} for p, (c, r) in zip(kept, scores)]}
