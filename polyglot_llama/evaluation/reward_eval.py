"""`polyglot-llama reward eval`: reward-model accuracy per language and per strength bucket, with plots.

A pair is ranked correctly when r(x, y_chosen) > r(x, y_rejected) (a tie counts as wrong). The report has
the shape of Llama 2's Table 8 (accuracy per rating bucket: significantly better … negligibly better),
per language, plus the score distributions of chosen and rejected answers and a calibration-style plot:
pairs binned by |r_chosen − r_rejected|, with the observed accuracy of each bin against the accuracy the
Bradley–Terry model behind the ranking loss predicts, σ(|Δr|). A well-trained RM is right more often
where it is more confident.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..config import write_resolved_config
from ..errors import UserError
from ..io import RejectCounter, write_json, write_jsonl, write_text
from ..train.reward_data import STRENGTH_LABELS, PreferencePair, load_pairs
from .lm import Runtime


@dataclass
class RewardEvalConfig:
    model: str = ""
    """Reward-model directory (from `polyglot-llama reward`, or any LlamaForSequenceClassification with 1 label)."""
    data: list[str] = field(default_factory=list)
    """Preference-pair files or globs (JSONL/Parquet: prompt, chosen, rejected, optional strength, lang)."""
    output: str = ""
    """Directory for reward_eval.json, reward_eval.md, the PNG plots, scores.jsonl and rejects.jsonl."""
    default_lang: str = "und"
    """Language of pairs without a lang field."""
    batch_size: int = 8
    """Sequences per forward pass."""
    max_length: int = 0
    """Longest sequence in tokens (0 = the model's context); longer ones keep their end."""
    bins: int = 8
    """Bins of |score difference| in the accuracy-vs-score-difference plot (equal-count bins)."""
    device: str = "auto"
    """auto (CUDA when present), cpu, cuda, cuda:1, ..."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Weights dtype; auto: bf16 on GPUs that support it, fp32 on CPU."""

    def __post_init__(self):
        if not self.model:
            raise UserError("key 'model' is required: the reward-model directory to evaluate")
        if not self.data:
            raise UserError("key 'data' is required: preference-pair files (JSONL/Parquet)")
        if not self.output:
            raise UserError("key 'output' is required: the directory for the report")
        if self.bins < 1 or self.batch_size < 1:
            raise UserError("keys 'bins' and 'batch_size' must be at least 1")


def score_pairs(model, tokenizer, pairs: list[PreferencePair], batch_size: int, max_length: int = 0) -> list[tuple[float, float]]:
    """(r_chosen, r_rejected) per pair, both scored in one call so they share batches and padding rules."""
    from ..model.reward_model import score

    prompts = [p.prompt for p in pairs] * 2
    responses = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    scores = score(model, tokenizer, prompts, responses, batch_size=batch_size, max_length=max_length or None,
                   progress=True).tolist()
    return list(zip(scores[:len(pairs)], scores[len(pairs):]))


def _accuracy(rows: list[tuple[float, float]]) -> dict:
    margins = [c - r for c, r in rows]
    return {"accuracy": sum(m > 0 for m in margins) / len(rows), "mean_margin": statistics.fmean(margins), "n": len(rows)}


def summarize_pairs(pairs: list[PreferencePair], scores: list[tuple[float, float]], bins: int = 8) -> dict:
    """Accuracy overall, per language, per strength and per (language, strength); score statistics; calibration bins."""
    by_lang, by_strength, by_both = defaultdict(list), defaultdict(list), defaultdict(list)
    for pair, row in zip(pairs, scores):
        strength = pair.strength or "unlabelled"
        by_lang[pair.lang].append(row)
        by_strength[strength].append(row)
        by_both[f"{pair.lang}/{strength}"].append(row)
    strength_order = [s for s in (*STRENGTH_LABELS, "unlabelled") if s in by_strength]
    return {
        "overall": _accuracy(scores) if scores else {"n": 0},
        "languages": {lang: _accuracy(rows) for lang, rows in sorted(by_lang.items())},
        "strength": {s: _accuracy(by_strength[s]) for s in strength_order},
        "language_strength": {key: _accuracy(rows) for key, rows in sorted(by_both.items())},
        "scores": {"chosen": _describe([c for c, _ in scores]), "rejected": _describe([r for _, r in scores])},
        "calibration": calibration_bins(scores, bins),
    }


def _describe(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return {"n": len(values), "mean": statistics.fmean(values), "std": statistics.pstdev(values),
            "min": min(values), "q25": q[0], "median": q[1], "q75": q[2], "max": max(values)}


def calibration_bins(scores: list[tuple[float, float]], bins: int) -> list[dict]:
    """Pairs sorted by |Δr| into ``bins`` equal-count bins: mean |Δr|, observed accuracy, σ(mean |Δr|), count."""
    ordered = sorted(((abs(c - r), c > r) for c, r in scores), key=lambda t: t[0])
    out = []
    for b in range(min(bins, len(ordered))):
        chunk = ordered[b * len(ordered) // bins:(b + 1) * len(ordered) // bins]
        if not chunk:
            continue
        mean_gap = statistics.fmean(g for g, _ in chunk)
        out.append({"abs_score_difference": mean_gap, "accuracy": sum(ok for _, ok in chunk) / len(chunk),
                    "predicted_accuracy": 1 / (1 + math.exp(-mean_gap)), "n": len(chunk)})
    return out


def markdown_report(summary: dict, model: str) -> str:
    from .report import markdown_table

    lines = [f"# Reward-model evaluation: {model}", "", f"Pairs: {summary['overall'].get('n', 0)}; "
             f"accuracy {summary['overall'].get('accuracy', float('nan')):.3f}", "", "## Accuracy per language", ""]
    lines += markdown_table(["language", "accuracy", "mean margin", "pairs"],
                            [[k, f"{v['accuracy']:.3f}", f"{v['mean_margin']:.3f}", v["n"]] for k, v in summary["languages"].items()])
    lines += ["", "## Accuracy per strength (Llama 2 Table 8 shape)", ""]
    lines += markdown_table(["strength", "accuracy", "mean margin", "pairs"],
                            [[k, f"{v['accuracy']:.3f}", f"{v['mean_margin']:.3f}", v["n"]] for k, v in summary["strength"].items()])
    lines += ["", "## Accuracy vs |score difference|", ""]
    lines += markdown_table(["mean abs diff", "accuracy", "sigmoid(diff)", "pairs"],
                            [[f"{b['abs_score_difference']:.3f}", f"{b['accuracy']:.3f}", f"{b['predicted_accuracy']:.3f}", b["n"]]
                             for b in summary["calibration"]])
    lines += ["", "![score distributions](score_distribution.png)", "",
              "![accuracy vs score difference](accuracy_vs_score_difference.png)", ""]
    return "\n".join(lines)


def run(cfg: RewardEvalConfig) -> dict:
    from . import plots
    from .checkpoints import load_reward_model_on

    output = Path(cfg.output)
    runtime = Runtime(device=cfg.device, dtype=cfg.dtype, batch_size=cfg.batch_size, max_length=cfg.max_length)
    rejects = RejectCounter()
    pairs = load_pairs(cfg.data, rejects, default_lang=cfg.default_lang)
    if not pairs:
        raise UserError(f"no usable pair in {cfg.data} ({rejects.count} rejected: {rejects.by_reason()}); "
                        "each record needs prompt, chosen and rejected")
    model, tokenizer = load_reward_model_on(cfg.model, runtime)
    scores = score_pairs(model, tokenizer, pairs, cfg.batch_size, cfg.max_length)
    summary = {"model": cfg.model, **summarize_pairs(pairs, scores, cfg.bins), "rejected": rejects.by_reason()}
    output.mkdir(parents=True, exist_ok=True)
    write_json(output / "reward_eval.json", summary)
    write_jsonl(output / "scores.jsonl", (
        {"file": p.file, "record": p.record, "lang": p.lang, "strength": p.strength, "chosen_score": c, "rejected_score": r}
        for p, (c, r) in zip(pairs, scores)))
    write_jsonl(output / "rejects.jsonl", rejects.rejected)
    plots.score_distributions(scores, output / "score_distribution.png")
    plots.calibration(summary["calibration"], output / "accuracy_vs_score_difference.png")
    plots.grouped_bars({"accuracy": {k: v["accuracy"] for k, v in summary["languages"].items()}},
                       output / "accuracy_by_language.png", "RM accuracy per language", ylabel="accuracy")
    write_text(output / "reward_eval.md", markdown_report(summary, cfg.model))
    write_resolved_config(cfg, output, "reward eval")
    return {"output": str(output), "pairs": len(pairs), "accuracy": summary["overall"]["accuracy"],
            "languages": {k: v["accuracy"] for k, v in summary["languages"].items()}, "rejected": rejects.count}
