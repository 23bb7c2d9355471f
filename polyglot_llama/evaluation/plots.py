"""PNG plots for the eval and reward-eval reports (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot loads)

from ..io import atomic_path  # noqa: E402


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def grouped_bars(series: dict[str, dict[str, float | None]], path: Path, title: str, ylabel: str = "",
                 intervals: dict[str, dict[str, list[float]]] | None = None) -> Path:
    """Bars per category (language) with one bar per series (checkpoint) side by side; None values are left out.
    ``intervals`` ({series: {category: [low, high]}}) draws error bars."""
    intervals = intervals or {}
    categories = sorted({c for values in series.values() for c in values})
    n = max(len(series), 1)
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(categories) * max(1, n / 2) + 2), 3.6))
    for i, (name, values) in enumerate(series.items()):
        xs = [j + (i - (n - 1) / 2) * width for j, c in enumerate(categories) if values.get(c) is not None]
        ys = [values[c] for c in categories if values.get(c) is not None]
        cis = [intervals.get(name, {}).get(c) for c in categories if values.get(c) is not None]
        yerr = None
        if any(cis):  # asymmetric: [[below], [above]]; a bar without an interval gets none
            # max(0, ...): a bootstrap bound equal to the value can differ from it by float round-off
            yerr = [[max(0.0, y - ci[0]) if ci else 0 for y, ci in zip(ys, cis)],
                    [max(0.0, ci[1] - y) if ci else 0 for y, ci in zip(ys, cis)]]
        bars = ax.bar(xs, ys, width, label=name, yerr=yerr, capsize=3 if yerr else 0, error_kw={"elinewidth": 1})
        ax.bar_label(bars, fmt="%.3g", fontsize=7, padding=1)
    values = [v for vs in series.values() for v in vs.values() if v is not None]
    values += [ci[1] for cis in intervals.values() for ci in cis.values()]
    if values and min(values) >= 0:  # rates, accuracies, bits per byte: the axis starts at 0
        ax.set_ylim(bottom=0, top=max(max(values) * 1.15, 1e-9) if max(values) > 0 else 1)
    ax.set_xticks(range(len(categories)), categories)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside, never over bars
    return _save(fig, path)


def score_distributions(scores: list[tuple[float, float]], path: Path) -> Path:
    """Histograms of chosen and rejected scores (left) and of r_chosen − r_rejected (right)."""
    chosen, rejected = [c for c, _ in scores], [r for _, r in scores]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    bins = min(30, max(5, len(scores) // 3))
    left.hist(chosen, bins=bins, alpha=0.6, label="chosen")
    left.hist(rejected, bins=bins, alpha=0.6, label="rejected")
    left.set_title("reward scores", fontsize=10)
    left.legend(fontsize=8, frameon=False)
    right.hist([c - r for c, r in scores], bins=bins, color="tab:green")
    right.axvline(0, color="black", lw=1)
    right.set_title("r(chosen) − r(rejected)", fontsize=10)
    return _save(fig, path)


def calibration(bins: list[dict], path: Path) -> Path:
    """Observed accuracy per |score difference| bin against σ(|Δr|), the Bradley–Terry prediction."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    xs = [b["abs_score_difference"] for b in bins]
    ax.plot(xs, [b["accuracy"] for b in bins], "o-", label="observed accuracy")
    ax.plot(xs, [b["predicted_accuracy"] for b in bins], "--", color="gray", label="σ(|Δr|)")
    ax.set_xlabel("|r(chosen) − r(rejected)| (bin mean)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    ax.set_title("accuracy vs score difference", fontsize=10)
    return _save(fig, path)
