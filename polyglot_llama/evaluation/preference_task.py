"""Task kind ``preference``: DPO-style implicit-reward accuracy of a chat model against a reference.

For each held-out pair the checkpoint's implicit reward r(y) = β·(log π(y|x) − log π_ref(y|x)) (summed
over the answer tokens, rendered with the checkpoint's chat template as `polyglot-llama dpo` renders them)
must rank the chosen answer above the rejected one. The numbers are those of `dpo`'s ``dpo_results.json``
(same functions, `train.dpo_metrics`), but computed here for any checkpoint: an SFT model, a DPO model, a
PPO policy. Per language: accuracy (Wilson interval from the per-pair outcomes), margin, chosen/rejected
rewards and mean log-probs, and the per-token KL to the reference on the answers; per strength label:
accuracy with its Wilson interval, as a breakdown table.

The reference must use the checkpoint's tokenizer (same ids). Its log-probs are computed once per task and
data and reused for every checkpoint of the run.
"""

from __future__ import annotations

import gc
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from ..errors import UserError
from ..io import RejectCounter
from .data import DataSpec, report_empty_languages
from .stats import wilson_interval


@dataclass
class PreferenceTask:
    name: str = ""
    """Task name in reports."""
    kind: Literal["preference"] = "preference"
    """Task kind."""
    data: DataSpec | None = None
    """Preference pairs: {files, languages, default_lang, limit} in the reward/dpo format (prompt, chosen, rejected, optional lang, strength)."""
    reference: str = ""
    """Reference model directory (π_ref), usually the SFT checkpoint a DPO run started from. Required."""
    beta: float = 0.1
    """β of the implicit reward (the DPO run's β, so margins compare with its dpo_results.json)."""
    chat_template: str = ""
    """Chat format, as `dpo`'s chat_template: '' (the checkpoint tokenizer's own, Llama 2's when it has none), 'llama2', 'tokenizer', a Jinja string or file."""
    kl: bool = True
    """Also report the per-token KL(π ‖ π_ref) on the answers (holds the reference beside the checkpoint)."""

    PRIMARY: ClassVar[str] = "accuracy"
    HIGHER_IS_BETTER: ClassVar[bool] = True
    VERSION: ClassVar[int] = 1

    def __post_init__(self):
        from ..chat import check_template_spec

        if self.data is None:
            raise UserError(f"task '{self.name}': key 'data' is required (data: {{files: [...]}})")
        if not self.reference:
            raise UserError(f"task '{self.name}': key 'reference' is required: the reference model directory (the DPO run's start)")
        if self.beta <= 0:
            raise UserError(f"task '{self.name}': key 'beta' is {self.beta}; it must be positive (DPO paper: 0.1)")
        check_template_spec(self.chat_template)
        self._reference_logps: dict[str, tuple[list[float], list[float]]] = {}

    def resolve(self, base_dir: Path) -> None:
        """A relative reference path is relative to the YAML file that named it."""
        if not Path(self.reference).is_absolute() and (base_dir / self.reference).is_dir():
            self.reference = str(base_dir / self.reference)

    def fingerprint_extra(self) -> str:
        """The reference's weights decide the numbers too (a retrained reference invalidates cached results)."""
        from .checkpoints import fingerprint_checkpoint

        return fingerprint_checkpoint(self.reference) if (Path(self.reference) / "config.json").is_file() else ""

    def _pairs(self, rejects: RejectCounter) -> list:
        from ..train.reward_data import load_pairs

        pairs = load_pairs(self.data.files, rejects, default_lang=self.data.default_lang or "und")
        by_lang: dict[str, list] = {lang: [] for lang in self.data.languages}
        for pair in pairs:
            if self.data.languages and pair.lang not in self.data.languages:
                continue
            bucket = by_lang.setdefault(pair.lang, [])
            if not self.data.limit or len(bucket) < self.data.limit:
                bucket.append(pair)
        languages = report_empty_languages(by_lang, rejects, self.data.files[0])
        return [pair for lang in languages for pair in by_lang[lang]]

    def _load_reference(self, lm):
        from ..model.checkpoint import check_vocab_matches, load_causal_lm

        if not (Path(self.reference).is_dir() and (Path(self.reference) / "config.json").is_file()):
            raise UserError(f"task '{self.name}': reference {self.reference} is not a model directory (no config.json)")
        reference = load_causal_lm(self.reference, dtype=lm.runtime.torch_dtype()).to(lm.device).eval()
        check_vocab_matches(reference, lm.tokenizer, self.reference, "the checkpoint's tokenizer")
        return reference

    def evaluate(self, checkpoint, rejects: RejectCounter) -> dict:
        from ..chat import resolve_template
        from ..train import dpo_data
        from ..train.dpo_metrics import implicit_rewards, summarize_rewards, token_kl_to_reference

        lm = checkpoint.language_model()
        template = resolve_template(self.chat_template, lm.tokenizer, checkpoint.path)
        pairs = self._pairs(rejects)
        examples = dpo_data.encode_pairs(pairs, lm.tokenizer, template, lm.max_length, "small", rejects)
        if not examples:
            raise UserError(f"task '{self.name}': no usable preference pairs in {self.data.files} ({rejects.by_reason()})")
        batch = lm.runtime.batch_size
        key = dpo_data.fingerprint(examples, self.reference)
        reference = None
        if key not in self._reference_logps:
            reference = self._load_reference(lm)
            self._reference_logps[key] = dpo_data.answer_logprobs(reference, examples, lm.pad_id, batch, nullcontext)
        for example, c, r in zip(examples, *self._reference_logps[key]):
            example["ref_chosen"], example["ref_rejected"] = c, r
        rows = implicit_rewards(lm.model, examples, self.beta, lm.pad_id, batch, nullcontext)
        kl = {}
        if self.kl:
            reference = reference or self._load_reference(lm)
            kl = token_kl_to_reference(lm.model, reference, examples, lm.pad_id, batch, nullcontext)["language"]
        del reference
        gc.collect()
        summary = summarize_rewards(examples, rows)
        languages = {}
        for lang, stats in summary["language"].items():
            outcomes = [int(row[0] > row[1]) for e, row in zip(examples, rows) if e["lang"] == lang]
            languages[lang] = {"accuracy": stats["accuracy"], "n": stats["pairs"], "outcomes": outcomes,
                               **{k: stats[k] for k in ("margin", "chosen_reward", "rejected_reward", "chosen_logp", "rejected_logp")},
                               **({"kl_to_reference": kl[lang]} if lang in kl else {})}
        strength = {label: {"accuracy": stats["accuracy"], "n": stats["pairs"], "margin": stats["margin"],
                            "ci95": list(wilson_interval(round(stats["accuracy"] * stats["pairs"]), stats["pairs"])),
                            "ci_method": "wilson"}
                    for label, stats in summary["strength"].items()}
        return {"languages": languages, "breakdowns": {"strength": strength},
                "predictions": [{"lang": e["lang"], "strength": e["strength"], "chosen_reward": row[0],
                                 "rejected_reward": row[1], "chosen_logp": row[2], "rejected_logp": row[3]}
                                for e, row in zip(examples, rows)]}
