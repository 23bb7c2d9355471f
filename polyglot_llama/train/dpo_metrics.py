"""Held-out preference metrics of a DPO policy, per language and per strength label.

The implicit reward of a response is r = β·(log π(y|x) − log π_ref(y|x)) (summed over the answer tokens,
Rafailov et al. 2023 §5). Reward accuracy is the share of pairs with r_chosen > r_rejected; the margin is
the mean of r_chosen − r_rejected. The mean answer log-probs of chosen and rejected responses are reported
too: both falling together is the known DPO failure where the margin grows while the chosen answer itself
becomes less likely.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import torch

from . import dpo_data
from .losses import IGNORE_INDEX


def _stats(rows: list[tuple[float, float, float, float]]) -> dict:
    """rows of (chosen reward, rejected reward, chosen logp, rejected logp) → summary."""
    n = len(rows)
    mean = lambda k: sum(r[k] for r in rows) / n  # noqa: E731
    return {"pairs": n, "accuracy": sum(r[0] > r[1] for r in rows) / n, "margin": mean(0) - mean(1),
            "chosen_reward": mean(0), "rejected_reward": mean(1), "chosen_logp": mean(2), "rejected_logp": mean(3)}


@torch.no_grad()
def implicit_rewards(model, examples: list[dict], beta: float, pad_id: int, batch_size: int,
                     autocast) -> list[tuple[float, float, float, float]]:
    """Per pair (chosen reward, rejected reward, chosen logp, rejected logp), in the order of ``examples``,
    which carry the reference log-probs (``ref_chosen``/``ref_rejected``)."""
    was_training = model.training
    model.eval()
    chosen, rejected = dpo_data.answer_logprobs(model, examples, pad_id, batch_size, autocast)
    model.train(was_training)
    return [(beta * (c - e["ref_chosen"]), beta * (r - e["ref_rejected"]), c, r)
            for e, c, r in zip(examples, chosen, rejected)]


def summarize_rewards(examples: list[dict], rows: list[tuple[float, float, float, float]]) -> dict:
    """{"overall", "language": {lang: ...}, "strength": {label: ...}} of accuracy, margin, rewards and log-probs."""
    groups: dict[str, dict[str, list]] = {"language": defaultdict(list), "strength": defaultdict(list)}
    for example, row in zip(examples, rows):
        groups["language"][example["lang"]].append(row)
        groups["strength"][example["strength"]].append(row)
    return {"overall": _stats(rows), **{name: {k: _stats(v) for k, v in sorted(g.items())} for name, g in groups.items()}}


def preference_metrics(model, examples: list[dict], beta: float, pad_id: int, batch_size: int, autocast) -> dict:
    """`summarize_rewards` of the held-out ``examples`` under ``model`` ({} without examples)."""
    if not examples:
        return {}
    return summarize_rewards(examples, implicit_rewards(model, examples, beta, pad_id, batch_size, autocast))


@torch.no_grad()
def token_kl_to_reference(model, reference, examples: list[dict], pad_id: int, batch_size: int, autocast) -> dict:
    """Mean per-token KL(π ‖ π_ref) in nats over the answer positions of the held-out chosen and rejected
    responses (exact over the vocabulary at each position, teacher-forced), overall and per language."""
    if not examples:
        return {}
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])  # lang → [Σ KL, tokens]
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        batch = dpo_data.collate([chunk], pad_id)
        inputs = {"input_ids": batch["input_ids"].to(device), "attention_mask": batch["attention_mask"].to(device), "use_cache": False}
        with autocast():
            logp = torch.log_softmax(model(**inputs).logits.float(), dim=-1)
            ref_logp = torch.log_softmax(reference(**inputs).logits.float(), dim=-1)
        kl = (logp.exp() * (logp - ref_logp)).sum(-1)  # [2B, T]: KL at each position
        scored = torch.nn.functional.pad(batch["labels"], (0, 1), value=IGNORE_INDEX)[:, 1:].to(device) != IGNORE_INDEX
        per_row_kl, per_row_tokens = (kl * scored).sum(-1).tolist(), scored.sum(-1).tolist()
        langs = [e["lang"] for e in chunk] * 2
        for lang, value, count in zip(langs, per_row_kl, per_row_tokens):
            totals[lang][0] += value
            totals[lang][1] += count
    model.train(was_training)
    kl_sum, tokens = sum(v[0] for v in totals.values()), sum(v[1] for v in totals.values())
    return {"overall": kl_sum / max(tokens, 1), "language": {k: v[0] / max(v[1], 1) for k, v in sorted(totals.items())}}


def write_tensorboard(log_dir: Path, evaluations: dict[int, dict], kl: dict, kl_step: int) -> None:
    """Scalars ``preference/<group>/<name>/<metric>`` at each evaluated step, beside the loop's own logs."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(log_dir))
    for step, results in evaluations.items():
        for metric, value in results.get("overall", {}).items():
            writer.add_scalar(f"preference/overall/{metric}", value, step)
        for group in ("language", "strength"):
            for name, stats in results.get(group, {}).items():
                for metric, value in stats.items():
                    writer.add_scalar(f"preference/{group}/{name}/{metric}", value, step)
    if kl:
        writer.add_scalar("preference/overall/kl_to_reference", kl["overall"], kl_step)
        for lang, value in kl["language"].items():
            writer.add_scalar(f"preference/language/{lang}/kl_to_reference", value, kl_step)
    writer.close()
