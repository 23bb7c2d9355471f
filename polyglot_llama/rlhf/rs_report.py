"""Rejection-sampling statistics per language: mean / max reward, best-of-K gain, reward vs K (Figure 7).

The reward-vs-K curve uses every sample: for K sorted rewards r_(1) ≤ … ≤ r_(K) of a prompt, the expected
best of k drawn without replacement is Σ_{i≥k} C(i−1, k−1)/C(K, k) · r_(i). That is the unbiased estimate
of what sampling only k answers would have given, for every k ≤ K, from one round of K samples.
"""

from __future__ import annotations

from math import comb
from pathlib import Path

import torch

from ..io import write_text


def expected_best_of_k(rewards: torch.Tensor) -> torch.Tensor:
    """rewards [N, K] → [K]: entry k−1 is the mean over prompts of E[max of k of the K samples]."""
    n_samples = rewards.shape[1]
    ordered = rewards.double().sort(dim=1).values  # ascending: column i holds r_(i+1)
    curve = []
    for k in range(1, n_samples + 1):
        weights = torch.tensor([comb(i, k - 1) / comb(n_samples, k) for i in range(n_samples)], dtype=torch.float64)
        curve.append((ordered * weights).sum(dim=1).mean())
    return torch.stack(curve).float()


def language_stats(rewards: torch.Tensor, pool_rewards: torch.Tensor) -> dict:
    """Summary of one language: rewards [N, K] of this round's samples, pool_rewards [N] after the merge."""
    curve = expected_best_of_k(rewards)
    best = rewards.max(dim=1).values
    return {
        "prompts": int(rewards.shape[0]),
        "mean_reward": float(rewards.mean()),
        "max_reward": float(rewards.max()),
        "mean_best_of_k": float(best.mean()),
        "best_of_k_gain": float(best.mean() - rewards.mean()),
        "pool_mean_reward": float(pool_rewards.mean()),
        "reward_vs_k": [round(float(v), 6) for v in curve],
    }


def write_markdown(report: dict, path: Path) -> None:
    k = report["samples_per_prompt"]
    lines = [f"# Rejection sampling, round {report['round']}", "",
             f"{report['prompts']} prompts × {k} samples, temperature {report['temperature']}, reward `{report['reward']}`.", "",
             "| language | prompts | mean reward | max reward | best-of-K mean | gain | pool mean (all rounds) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for lang, s in report["languages"].items():
        lines.append(f"| {lang} | {s['prompts']} | {s['mean_reward']:.4f} | {s['max_reward']:.4f} | {s['mean_best_of_k']:.4f} "
                     f"| {s['best_of_k_gain']:+.4f} | {s['pool_mean_reward']:.4f} |")
    lines += ["", "Reward of the best of k samples (expected, from all K):", "",
              "| language | " + " | ".join(f"k={i}" for i in range(1, k + 1)) + " |",
              "| --- " * (k + 1) + "|"]
    for lang, s in report["languages"].items():
        lines.append(f"| {lang} | " + " | ".join(f"{v:.4f}" for v in s["reward_vs_k"]) + " |")
    write_text(path, "\n".join(lines) + "\n")


def plot_reward_vs_k(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_path

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for lang, s in report["languages"].items():
        ks = range(1, len(s["reward_vs_k"]) + 1)
        ax.plot(ks, s["reward_vs_k"], marker="o", label=lang)
    ax.set_xlabel("samples per prompt (k)")
    ax.set_ylabel("expected best reward")
    ax.set_title(f"Best-of-k reward, round {report['round']}")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
