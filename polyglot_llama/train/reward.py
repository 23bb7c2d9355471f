"""`polyglot-llama reward`: train a helpfulness or safety reward model with the margin ranking loss.

The RM starts from a chat (SFT) checkpoint whose LM head is replaced by a scalar head
(`polyglot_llama.model.reward_model`) and trains on preference pairs through the one training loop: each
micro-batch holds B pairs as 2B rows (chosen, then rejected) in a single forward pass, and the loss is
``−log σ(r_c − r_r − m(strength))`` (`losses.reward_margin_loss`). Defaults are the paper's (§3.2.2):
one epoch, lr 1e-5 (use 5e-6 for 70B), cosine to 10 %, warm-up 3 % of the steps (at least 5), 512 pairs
per optimizer step over all processes (8 per micro-batch, accumulation resolved from the process count).
The loss is a mean over pairs: the loop weighs micro-batches by their pair count (`count_pairs`).

Output: a Hugging Face ``LlamaForSequenceClassification`` directory with its tokenizer and
``reward_config.json``, plus ``validation_accuracy.json`` (per language and per strength),
``rejected_pairs.jsonl`` (skipped input with reasons) and ``training/`` (resumable checkpoints, logs).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import torch

from ..config import write_resolved_config
from ..errors import UserError
from ..io import RejectCounter, write_json, write_jsonl
from ..model.checkpoint import check_vocab_matches, load_tokenizer
from ..model.reward_model import (REWARD_CONFIG_FILE, build_reward_model, context_length, load_reward_model,
                                  prepare_tokenizer, sequence_scores)
from .loop import LoopConfig, OptimConfig, ScheduleConfig, StepOutput, save_final, train
from .losses import REWARD_MARGINS, reward_margin_loss
from .reward_data import (MixSource, PairDataConfig, collate_pairs, describe, encode_pairs, load_pairs, mix_pairs,
                          split_validation)

log = logging.getLogger(__name__)


@dataclass
class RewardDataConfig(PairDataConfig):
    train: list[str] = field(default_factory=list)
    """Primary preference pairs (JSONL/Parquet globs), all used: helpfulness data for the helpfulness RM, safety data for the safety RM."""
    is_safety: bool = False
    """Tag primary pairs that have no is_safety key as safety pairs."""
    mix: list[MixSource] = field(default_factory=list)
    """Other sources sampled into the mixture as a share of it, e.g. safety RM: [{files: [helpful/*.jsonl], share: 0.1}]; helpfulness RM: [{files: [safety/*.jsonl, open/*.jsonl], share: 0.5}]."""


@dataclass
class RewardConfig:
    model: str = ""
    """Starting checkpoint: the chat (SFT) model directory, or a reward model to keep training."""
    output: str = ""
    """Reward-model directory to write (Hugging Face format + reward_config.json + reports)."""
    kind: Literal["helpfulness", "safety"] = "helpfulness"
    """Which RM this is; recorded in reward_config.json for RLHF's combined reward."""
    tokenizer: str = ""
    """Tokenizer directory (default: the model directory)."""
    margin: Literal["none", "small", "large"] = "small"
    """Margin table m(strength) of the loss (Llama 2 Table 27): small 1, 2/3, 1/3, 0; large 3, 2, 1, 0; none."""
    data: RewardDataConfig = field(default_factory=RewardDataConfig)
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(epochs=1.0, micro_batch_size=8, global_batch_size=512))
    """micro_batch_size and global_batch_size count pairs (2 rows each); default 512 pairs per optimizer step on any number of processes (8 per micro-batch × 64 accumulated on one, × 8 on eight)."""
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-5))
    schedule: ScheduleConfig = field(default_factory=lambda: ScheduleConfig(kind="cosine", warmup_ratio=0.03, min_warmup_steps=5, final_lr_ratio=0.1))
    eval_batch_size: int = 16
    """Pairs per batch when scoring the validation set after training."""

    def __post_init__(self):
        if not self.model:
            raise UserError("key 'model' is required: the chat checkpoint to start the reward model from")
        if not self.output:
            raise UserError("key 'output' is required: the reward-model directory to write")


def count_pairs(batch: dict) -> int:
    """Loss units of a reward batch: its pairs (one margin each), not its 2B rows."""
    return int(batch["margin"].numel())


def reward_step(model, batch: dict) -> StepOutput:
    """Rewards of 2B rows (chosen rows first) in one forward pass → margin ranking loss over the B pairs."""
    rewards = sequence_scores(model, batch["input_ids"], batch["attention_mask"])  # [2B]
    chosen, rejected = rewards.chunk(2)
    loss = reward_margin_loss(chosen, rejected, batch["margin"])
    gap = (chosen - rejected).detach()
    return StepOutput(loss=loss, n_tokens=int(chosen.numel()),
                      metrics={"accuracy": float((gap > 0).float().mean()), "reward_gap": float(gap.mean())})


@torch.no_grad()
def pair_accuracy(model, examples: list[dict], pad_id: int, batch_size: int = 16) -> dict:
    """Accuracy (chosen scored above rejected), mean reward gap and count, overall, per language and per strength."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    groups: dict[str, dict[str, list[float]]] = {"language": defaultdict(list), "strength": defaultdict(list)}
    gaps: list[float] = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        batch = collate_pairs(chunk, pad_id)
        rewards = sequence_scores(model, batch["input_ids"].to(device), batch["attention_mask"].to(device)).cpu()
        chosen, rejected = rewards.chunk(2)
        for example, gap in zip(chunk, (chosen - rejected).tolist()):
            gaps.append(gap)
            groups["language"][example["lang"]].append(gap)
            groups["strength"][example["strength"]].append(gap)
    model.train(was_training)

    def stats(values: list[float]) -> dict:
        return {"accuracy": sum(v > 0 for v in values) / len(values), "mean_gap": sum(values) / len(values), "pairs": len(values)}

    return {"overall": stats(gaps) if gaps else {},
            **{name: {key: stats(v) for key, v in sorted(group.items())} for name, group in groups.items()}}


def _load_mixture(cfg: RewardConfig, rejects: RejectCounter):
    data = cfg.data
    primary = load_pairs(data.train, rejects, "primary", data.default_lang, data.is_safety)
    extra = [(source, load_pairs(source.files, rejects, source.name, data.default_lang, source.is_safety)) for source in data.mix]
    mixture, summary = mix_pairs(primary, extra, cfg.loop.seed)
    if data.validation:
        return mixture, load_pairs(data.validation, rejects, "validation", data.default_lang), summary
    train_pairs, validation = split_validation(mixture, data.validation_fraction, cfg.loop.seed)
    return train_pairs, validation, summary


def _by_language(examples: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for example in examples:
        out[example["lang"]].append(example)
    return dict(sorted(out.items()))


def run(cfg: RewardConfig) -> dict:
    output = Path(cfg.output)
    tokenizer_dir = cfg.tokenizer or cfg.model
    tokenizer = load_tokenizer(tokenizer_dir)
    model = build_reward_model(cfg.model, seed=cfg.loop.seed)
    check_vocab_matches(model, tokenizer, cfg.model, tokenizer_dir)
    prepare_tokenizer(model, tokenizer)
    output.mkdir(parents=True, exist_ok=True)
    write_resolved_config(cfg, output, "reward")

    rejects = RejectCounter()
    train_pairs, validation_pairs, mixture = _load_mixture(cfg, rejects)
    max_length = cfg.data.max_length or context_length(model, tokenizer)
    train_examples = encode_pairs(train_pairs, tokenizer, max_length, cfg.margin, rejects, progress=len(train_pairs) > 10_000)
    validation_examples = encode_pairs(validation_pairs, tokenizer, max_length, cfg.margin, rejects)
    if rejects.count:
        write_jsonl(output / "rejected_pairs.jsonl", rejects.rejected)
        log.warning("reward: skipped %d pairs: %s (see %s)", rejects.count, rejects.by_reason(), output / "rejected_pairs.jsonl")
    if not train_examples:
        raise UserError(f"{cfg.data.train}: no usable preference pairs ({rejects.count} skipped: {rejects.by_reason()})")
    log.info("reward: %s training pairs %s, validation pairs %s", cfg.kind, describe(train_examples)["languages"],
             describe(validation_examples)["languages"])

    collate = partial(collate_pairs, pad_id=tokenizer.pad_token_id)
    result = train(model, train_examples, collate, reward_step, output / "training", loop=cfg.loop, optim=cfg.optim,
                   schedule=cfg.schedule, count_fn=count_pairs, eval_sets=_by_language(validation_examples),
                   run_config={"kind": cfg.kind, "margin": cfg.margin, "lr": cfg.optim.lr})
    reward_config = {"kind": cfg.kind, "margin": cfg.margin, "base_model": str(cfg.model), "max_length": max_length,
                     "margins": REWARD_MARGINS[cfg.margin], "training_pairs": describe(train_examples), "mixture": mixture}
    save_final(result["model"], output, tokenizer_dir=tokenizer_dir,
               extra_files={REWARD_CONFIG_FILE: json.dumps(reward_config, indent=2, ensure_ascii=False)})
    summary = {"output": str(output), "kind": cfg.kind, "steps": result["steps"], "train_loss": result["train_loss"],
               "tokens_per_second": result["tokens_per_second"], "training_pairs": describe(train_examples),
               "validation_pairs": len(validation_examples), "mixture": mixture, "rejected_pairs": rejects.by_reason()}
    if not result["is_main_process"]:
        return summary
    # Sharded (FSDP/DeepSpeed) weights live across ranks: score the saved directory instead.
    trained = result["model"]
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        trained, _ = load_reward_model(output, device=next(trained.parameters()).device)
    if validation_examples:
        accuracy = pair_accuracy(trained, validation_examples, tokenizer.pad_token_id, cfg.eval_batch_size)
        write_json(output / "validation_accuracy.json", accuracy)
        summary["validation_accuracy"] = accuracy
    return summary
