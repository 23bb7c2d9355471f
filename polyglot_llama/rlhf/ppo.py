"""`polyglot-llama ppo`: PPO on the combined reward with a per-token KL penalty to the reference policy.

Llama 2 §3.2.3: R(g|p) = WHITEN(LOGIT(R_c(g|p))) − β·KL(π_θ ‖ π_0), the KL taken per token against the
frozen starting policy; GAE advantages, clipped policy and value losses (ε = 0.2), one gradient step per
mini-batch; AdamW (0.9, 0.95), eps 1e-5, weight decay 0.1, gradient clip 1.0, constant lr 1e-6, batch 512,
mini-batch 64, β 0.01 (≤ 13B) / 0.005 (larger). Each step: rollout (sample B answers) → scoring → update.

Held-out prompts are evaluated every ``eval_every`` steps (mean reward of seeded samples, per language);
the best policy so far is saved to ``output/model`` and training stops after ``patience`` evaluations
without improvement. ``output/checkpoints/`` (the training loop's checkpoint format) makes the run
resumable; ``metrics.jsonl`` has one line per step: reward, KL, entropy, clip fractions, value loss,
approximate KL, response length and the rollout / scoring / update times.
"""

from __future__ import annotations

import logging
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import torch
from tqdm.auto import tqdm

from ..config import to_dict, write_resolved_config
from ..errors import UserError
from ..io import read_json, write_json, write_jsonl
from ..model.checkpoint import save_checkpoint
from ..train import checkpointing
from ..train.loop import OptimConfig, weight_decay_groups
from ..train.losses import entropy_from_logits, masked_mean, ppo_policy_loss, ppo_value_loss
from .generation import SamplingConfig, derive_seed, generate
from .ppo_model import PolicyWithValue, gather_logprobs, load_value_model
from .ppo_rollout import Rollout, collect, rollout_seeds
from .prompts import Prompt, by_language, encode_prompts, load_prompts, write_rejects
from .rewards import RewardConfig, RewardScorer
from .runtime import frozen_dtype, load_policy, pick_device

log = logging.getLogger(__name__)


@dataclass
class PPOConfig:
    model: str = ""
    """Starting policy (the last rejection-sampling round's checkpoint); also the frozen reference unless 'reference' is set."""
    reference: str = ""
    """Frozen reference policy π_0 for the KL penalty (default: model)."""
    tokenizer: str = ""
    """Tokenizer directory (default: the model directory)."""
    output: str = ""
    """Run directory: model/ (best policy), checkpoints/, metrics.jsonl, summary.json."""
    prompts: list[str] = field(default_factory=list)
    """Training prompt files (JSONL/Parquet globs) with optional 'lang', 'id', 'safety'."""
    eval_prompts: list[str] = field(default_factory=list)
    """Held-out prompt files for early stopping (empty: hold out eval_fraction of the training prompts)."""
    eval_fraction: float = 0.05
    """Share of the prompts held out when eval_prompts is empty (0 with no eval_prompts: no evaluation)."""
    default_lang: str = "en"
    """Language of prompt records without a 'lang' field."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    reward_shaping: Literal["logit_whiten", "whiten", "none"] = "logit_whiten"
    """Scalar reward from the score: WHITEN(LOGIT(R_c)) (Llama 2), batch whitening only, or the raw score."""
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(temperature=1.0, max_new_tokens=512))
    steps: int = 400
    """PPO iterations (rollout + update); Llama 2 ran 200–400 with early stopping."""
    batch_size: int = 512
    """Rollouts (prompts) per iteration."""
    mini_batch_size: int = 64
    """Rollouts per gradient step; one optimizer step per mini-batch."""
    micro_batch_size: int = 8
    """Rollouts per forward/backward pass (gradient accumulation inside a mini-batch; memory only)."""
    ppo_epochs: int = 1
    """Passes over each batch (Llama 2: one gradient step per mini-batch, i.e. 1)."""
    clip_range: float = 0.2
    """PPO policy clip ε."""
    value_clip_range: float = 0.2
    """Value-function clip around the rollout's values."""
    kl_beta: float | None = None
    """β of the per-token KL penalty; empty: 0.01 for models up to 13B parameters, 0.005 above (Llama 2)."""
    gamma: float = 1.0
    """Discount of GAE."""
    lam: float = 0.95
    """λ of GAE."""
    value_coef: float = 0.1
    """Weight of the value loss in the total loss."""
    value_model: Literal["separate", "shared"] = "separate"
    """Critic: a separate transformer with a value head, or a value head on the policy's own trunk."""
    value_init: str = ""
    """Checkpoint that initialises a separate critic (causal LM or reward model; default: model)."""
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1.0e-6))
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (large models)."""
    max_prompt_tokens: int = 1024
    """Prompts longer than this are skipped and counted."""
    eval_every: int = 10
    """Evaluate on the held-out prompts every N steps (0 = never)."""
    patience: int = 3
    """Stop after this many evaluations without a better held-out reward (0 = never stop early)."""
    save_every: int = 10
    """Write a resumable checkpoint every N steps (0 = only at the end)."""
    keep_checkpoints: int = 2
    """Newest checkpoints to keep."""
    seed: int = 0
    """Seeds prompt order, sampling and initialisation."""

    def __post_init__(self):
        for key in ("model", "output"):
            if not getattr(self, key):
                raise UserError(f"key '{key}' is required")
        if not self.prompts:
            raise UserError("key 'prompts' is empty; give JSONL/Parquet prompt files")
        if self.batch_size < 1 or self.mini_batch_size < 1 or self.micro_batch_size < 1:
            raise UserError("keys 'batch_size', 'mini_batch_size' and 'micro_batch_size' must be at least 1")
        if self.batch_size % self.mini_batch_size:
            raise UserError(f"key 'batch_size' ({self.batch_size}) must be a multiple of mini_batch_size ({self.mini_batch_size})")
        if self.steps < 1 or self.ppo_epochs < 1:
            raise UserError("keys 'steps' and 'ppo_epochs' must be at least 1")
        if not 0 < self.clip_range < 1:
            raise UserError(f"key 'clip_range' is {self.clip_range}; it must be in (0, 1)")
        if self.kl_beta is not None and self.kl_beta < 0:
            raise UserError(f"key 'kl_beta' is {self.kl_beta}; it must be ≥ 0")
        if not 0 <= self.eval_fraction < 1:
            raise UserError(f"key 'eval_fraction' is {self.eval_fraction}; it must be in [0, 1)")


def default_beta(policy) -> float:
    """Llama 2's β: 0.01 for 7B and 13B, 0.005 for 34B and 70B."""
    n_params = sum(p.numel() for p in policy.parameters())
    return 0.01 if n_params <= 20e9 else 0.005


def split_holdout(prompts: list[Prompt], fraction: float, seed: int) -> tuple[list[Prompt], list[Prompt]]:
    """(train, held out): a seeded ``fraction`` of each language, at least one where a language has two or more."""
    if fraction == 0:
        return prompts, []
    train, held = [], []
    for lang, idx in by_language(prompts).items():
        group = [prompts[i] for i in idx]
        random.Random(f"{seed}:{lang}").shuffle(group)
        n = max(1, round(len(group) * fraction)) if len(group) > 1 else 0
        held += group[:n]
        train += group[n:]
    return train, held


def batch_prompts(prompts: list[Prompt], step: int, batch_size: int, seed: int) -> list[Prompt]:
    """Step ``step``'s prompts: consecutive slices of seeded per-epoch permutations (exact on resume)."""
    picked, position = [], step * batch_size
    while len(picked) < batch_size:
        epoch, offset = divmod(position, len(prompts))
        order = torch.randperm(len(prompts), generator=torch.Generator().manual_seed(derive_seed(seed, "order", epoch) % 2**62))
        take = order[offset: offset + batch_size - len(picked)].tolist()
        picked += [prompts[i] for i in take]
        position += len(take)
    return picked


def update(model: PolicyWithValue, optimizer, rollout: Rollout, cfg: PPOConfig, step: int, autocast) -> dict[str, float]:
    """``ppo_epochs`` passes over the batch in shuffled mini-batches, one optimizer step each."""
    model.train()
    sums: dict[str, float] = {}
    n = 0
    params = [p for p in model.parameters() if p.requires_grad]
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "minibatch", step) % 2**62)
    for _ in range(cfg.ppo_epochs):
        for mb in torch.randperm(rollout.size, generator=gen).split(cfg.mini_batch_size):
            optimizer.zero_grad(set_to_none=True)
            for micro in mb.split(cfg.micro_batch_size):
                b = {k: v.to(device) if torch.is_tensor(v) else v for k, v in rollout.rows(micro).items()}
                with autocast():
                    logits, values = model.response_outputs(b["input_ids"], b["attention_mask"], rollout.prompt_width,
                                                            b["response_len"])
                P = rollout.prompt_width
                logprobs = gather_logprobs(logits, b["input_ids"][:, P:P + b["response_len"]])
                policy_loss, stats = ppo_policy_loss(logprobs, b["old_logprobs"], b["advantages"], b["mask"], cfg.clip_range)
                value_loss, value_clip = ppo_value_loss(values.float(), b["old_values"], b["returns"], b["mask"],
                                                        cfg.value_clip_range)
                loss = (policy_loss + cfg.value_coef * value_loss) * (len(micro) / len(mb))
                loss.backward()
                with torch.no_grad():
                    entropy = masked_mean(entropy_from_logits(logits), b["mask"])
                for key, value in (("policy_loss", policy_loss), ("value_loss", value_loss), ("clip_fraction", stats["clip_fraction"]),
                                   ("approx_kl", stats["approx_kl"]), ("value_clip_fraction", value_clip), ("entropy", entropy)):
                    sums[key] = sums.get(key, 0.0) + float(value.detach()) * len(micro)
                n += len(micro)
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
            sums["grad_norm"] = sums.get("grad_norm", 0.0) + float(grad_norm) * len(mb)
            optimizer.step()
    return {k: v / n for k, v in sums.items()}


@torch.no_grad()
def evaluate(model: PolicyWithValue, tokenizer, scorer, prompts: list[Prompt], cfg: PPOConfig) -> dict:
    """Mean reward of one seeded sample per held-out prompt, overall and per language."""
    seeds = [derive_seed(cfg.seed, "eval", p.id) for p in prompts]
    generations = generate(model.policy, tokenizer, [p.ids for p in prompts], cfg.sampling, seeds, progress=False)
    scores = scorer(prompts, [g.text for g in generations])
    return {"reward": float(scores.mean()),
            "languages": {lang: float(scores[idx].mean()) for lang, idx in by_language(prompts).items()}}


def _step_record(step: int, rollout: Rollout, stats: dict, update_s: float) -> dict:
    kl_per_seq = rollout.kl.sum(dim=1)
    record = {"step": step, "reward": float(rollout.scores.mean()), "kl": float(kl_per_seq.mean()),
              "response_length": float(rollout.mask.sum(dim=1).mean()), **stats, **rollout.timings, "update_s": update_s}
    for lang in sorted(set(rollout.langs)):
        idx = [i for i, l in enumerate(rollout.langs) if l == lang]
        record[f"reward/{lang}"] = float(rollout.scores[idx].mean())
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in record.items()}


def _load_prompts(cfg: PPOConfig, tokenizer):
    prompts, rejects = load_prompts(cfg.prompts, cfg.default_lang)
    if cfg.eval_prompts:
        held, eval_rejects = load_prompts(cfg.eval_prompts, cfg.default_lang, key="eval_prompts")
        rejects.rejected += eval_rejects.rejected
    else:
        prompts, held = split_holdout(prompts, cfg.eval_fraction, cfg.seed)
    prompts = encode_prompts(prompts, tokenizer, cfg.max_prompt_tokens, rejects)
    held = encode_prompts(held, tokenizer, cfg.max_prompt_tokens, rejects) if held else []
    return prompts, held, rejects


def _early_stop_state(history: list[dict]) -> tuple[float, int, int]:
    """(best held-out reward, its step, evaluations since it) from the step history."""
    best, best_step, since = float("-inf"), 0, 0
    for record in history:
        if "eval_reward" in record:
            if record["eval_reward"] > best:
                best, best_step, since = record["eval_reward"], record["step"], 0
            else:
                since += 1
    return best, best_step, since


def run(cfg: PPOConfig) -> dict:
    output = Path(cfg.output)
    output.mkdir(parents=True, exist_ok=True)
    write_resolved_config(cfg, output, "ppo")
    torch.manual_seed(cfg.seed)
    device = pick_device()
    policy, tokenizer = load_policy(cfg.model, cfg.tokenizer, device)
    prompts, held, rejects = _load_prompts(cfg, tokenizer)
    write_rejects(rejects, output)
    reference, _ = load_policy(cfg.reference or cfg.model, cfg.tokenizer, device, dtype=frozen_dtype(device))
    reference.eval().requires_grad_(False)
    critic = load_value_model(cfg.value_init or cfg.model).to(device) if cfg.value_model == "separate" else None
    if cfg.gradient_checkpointing:
        for m in (policy, critic):
            if m is not None:
                m.gradient_checkpointing_enable()
    model = PolicyWithValue(policy, critic).to(device)
    scorer = RewardScorer(cfg.reward, tokenizer, device=device)
    beta = cfg.kl_beta if cfg.kl_beta is not None else default_beta(policy)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(weight_decay_groups(params, cfg.optim.weight_decay), lr=cfg.optim.lr,
                                  betas=tuple(cfg.optim.betas), eps=cfg.optim.eps)
    autocast = partial(torch.autocast, device_type="cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=device.type == "cpu")
    history: list[dict] = []
    start_step = 0
    latest = checkpointing.latest(output)
    if latest is not None:
        state = checkpointing.load(latest, model, optimizer)
        start_step, history = state["step"], state["history"]
        log.info("ppo: resumed from %s (step %d)", latest, start_step)
    best, best_step, since_best = _early_stop_state(history)
    eval_before = None
    if held and cfg.eval_every and start_step == 0:  # the starting policy's held-out reward: the baseline
        eval_before = evaluate(model, tokenizer, scorer, held, cfg)
        write_json(output / "eval_before.json", eval_before)
    elif (output / "eval_before.json").is_file():
        eval_before = read_json(output / "eval_before.json")
    stopped_early = since_best >= cfg.patience > 0
    bar = tqdm(range(start_step, cfg.steps), desc="ppo", unit="step", initial=start_step, total=cfg.steps)
    step = start_step
    for step in bar:
        if stopped_early:
            break
        batch = batch_prompts(prompts, step, cfg.batch_size, cfg.seed)
        rollout = collect(model, reference, tokenizer, scorer, batch, cfg.sampling, rollout_seeds(cfg.seed, step, batch),
                          beta=beta, gamma=cfg.gamma, lam=cfg.lam, shaping=cfg.reward_shaping,
                          micro_batch_size=cfg.micro_batch_size, autocast=autocast)
        start = time.perf_counter()
        stats = update(model, optimizer, rollout, cfg, step, autocast)
        record = _step_record(step + 1, rollout, stats, time.perf_counter() - start)
        if held and cfg.eval_every and (step + 1) % cfg.eval_every == 0:
            result = evaluate(model, tokenizer, scorer, held, cfg)
            record["eval_reward"] = result["reward"]
            record.update({f"eval_reward/{lang}": v for lang, v in result["languages"].items()})
            if result["reward"] > best:
                best, best_step, since_best = result["reward"], step + 1, 0
                save_checkpoint(model.policy, output / "model", tokenizer_dir=cfg.tokenizer or cfg.model)
            else:
                since_best += 1
                stopped_early = since_best >= cfg.patience > 0
        history.append(record)
        bar.set_postfix(reward=f"{record['reward']:.3f}", kl=f"{record['kl']:.3f}", clip=f"{record['clip_fraction']:.2f}")
        write_jsonl(output / "metrics.jsonl", history)
        if (cfg.save_every and (step + 1) % cfg.save_every == 0) or step + 1 == cfg.steps or stopped_early:
            checkpointing.save(output, step + 1, model, optimizer, history, accelerator, cfg.keep_checkpoints)
    bar.close()
    if not held or not cfg.eval_every or best_step == 0:
        save_checkpoint(model.policy, output / "model", tokenizer_dir=cfg.tokenizer or cfg.model)
        best_step = history[-1]["step"] if history else 0
    summary = {
        "output": str(output / "model"), "steps": history[-1]["step"] if history else 0, "best_step": best_step,
        "eval_before": eval_before, "best_eval_reward": best if best > float("-inf") else None, "stopped_early": stopped_early, "kl_beta": beta,
        "prompts": {"train": len(prompts), "held_out": len(held), "rejected": rejects.count},
        "reward_info": scorer.info, "first": history[0] if history else None, "last": history[-1] if history else None,
        "config": to_dict(cfg),
    }
    write_json(output / "summary.json", summary)
    return summary
