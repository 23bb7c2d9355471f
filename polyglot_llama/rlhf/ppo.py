"""`polyglot-llama ppo`: PPO on the combined reward with a per-token KL penalty to the reference policy.

Llama 2 §3.2.3: R(g|p) = WHITEN(LOGIT(R_c(g|p))) − β·KL(π_θ ‖ π_0), the KL taken per token against the
frozen starting policy; GAE advantages, clipped policy and value losses (ε = 0.2), one gradient step per
mini-batch; AdamW (0.9, 0.95), eps 1e-5, weight decay 0.1, gradient clip 1.0, constant lr 1e-6, batch 512,
mini-batch 64, β 0.01 (≤ 13B) / 0.005 (larger). Each step: rollout (sample B answers) → scoring → update.

Log-probs are those of the sampling distribution softmax(logits / T) for the behaviour, current and
reference policies alike (settings that sample from anything else are refused). Policy and critic are
prepared by accelerate (`polyglot_llama.runtime`); the frozen reference and reward models are placed by
`Runtime.frozen` (whole, sharded like the trained models, or offloaded to CPU memory: ``frozen_placement``);
any number of processes takes the same steps as one (see `update` and `ppo_rollout.collect`). With the vLLM
backend each rank samples from its own vLLM engine, which receives the policy's weights after every update
(`weight_sync.push_policy_weights`).

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
from functools import partial
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from accelerate.utils import DistributedType

from ..config import to_dict, write_resolved_config
from ..errors import UserError
from ..runtime import Runtime
from ..io import read_json, write_json, write_jsonl
from ..model.checkpoint import save_checkpoint
from ..progress import phase
from ..train import checkpointing
from ..train.loop import OptimConfig, weight_decay_groups
from ..train.losses import entropy_from_logits, masked_mean, ppo_policy_loss, ppo_value_loss
from .generation import SamplingConfig, VLLMEngine, derive_seed, generate, resolve_backend
from .ppo_model import PolicyWithValue, gather_logprobs, load_value_model
from .ppo_rollout import Rollout, collect, rollout_seeds
from .prompts import Prompt, by_language, encode_prompts, load_prompts, write_rejects
from .rewards import RewardConfig, RewardScorer
from .runtime import load_policy
from .weight_sync import RolloutEngine, push_policy_weights

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
    missing_eos_penalty: float = 1.0
    """Subtracted from the shaped reward of answers cut at max_new_tokens without EOS (TRL's missing_eos_penalty; 0 = off)."""
    value_model: Literal["separate", "shared"] = "separate"
    """Critic: a separate transformer with a value head, or a value head on the policy's own trunk."""
    value_init: str = ""
    """Checkpoint that initialises a separate critic (causal LM or reward model; default: model)."""
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1.0e-6))
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    """Autocast of the policy and critic: auto is bf16 on GPUs that support it, fp32 on CPU."""
    frozen_placement: Literal["auto", "whole", "shard", "offload"] = "auto"
    """Reference and reward models: whole on every GPU, shard (over the ranks: FSDP2 or a ZeRO-3 inference engine), offload (CPU memory, streamed to one GPU per layer); auto shards them when training is sharded (FSDP, ZeRO-3), else whole."""
    vllm_gpu_memory: float = 0.3
    """Share of each GPU the vLLM backend's engine may take (the policy, critic, optimizer and frozen models share the rest)."""
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
        if self.sampling.temperature == 0:
            raise UserError("key 'sampling.temperature' is 0 (greedy); PPO needs sampled answers: use a positive temperature, e.g. 1.0")
        if not self.sampling.is_plain():
            raise UserError("keys 'sampling.top_p', 'repetition_penalty', 'no_repeat_ngram_size' must be off (1.0, 1.0, 0) "
                            "for PPO: its log-probs are those of softmax(logits / temperature) only")
        if not 0 < self.vllm_gpu_memory < 1:
            raise UserError(f"key 'vllm_gpu_memory' is {self.vllm_gpu_memory}; it must be in (0, 1)")
        if self.missing_eos_penalty < 0:
            raise UserError(f"key 'missing_eos_penalty' is {self.missing_eos_penalty}; it must be ≥ 0 (0 = off)")


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


def update(model, optimizer, rollout: Rollout, cfg: PPOConfig, step: int, runtime: Runtime) -> dict[str, float]:
    """``ppo_epochs`` passes over the batch in shuffled global mini-batches, one optimizer step each.

    Every rank holds the whole rollout and draws the same permutation; rank r takes the r-th contiguous part
    of each mini-batch (DDP averages the ranks' gradients), so any process count takes the same steps.
    """
    model.train()
    sums: dict[str, float] = {}
    params = [p for p in model.parameters() if p.requires_grad]
    T = cfg.sampling.temperature
    part = runtime.shard(cfg.mini_batch_size, "mini_batch_size")
    max_norm = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf")  # 0: no clipping, norm still logged
    gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "minibatch", step) % 2**62)
    for _ in range(cfg.ppo_epochs):
        for mb in torch.randperm(rollout.size, generator=gen).split(cfg.mini_batch_size):
            mine = mb[part]
            optimizer.zero_grad(set_to_none=True)
            micros = mine.split(cfg.micro_batch_size)
            for k, micro in enumerate(micros):
                b = {key: v.to(runtime.device) if torch.is_tensor(v) else v for key, v in rollout.rows(micro).items()}
                P, width = rollout.prompt_width, b["response_len"]
                accumulate = runtime.accelerator.no_sync(model) if k < len(micros) - 1 and runtime.world > 1 else nullcontext()
                with accumulate, runtime.autocast():
                    logits, values = model(b["input_ids"], b["attention_mask"], P, width)
                    logprobs = gather_logprobs(logits, b["input_ids"][:, P:P + width], T)
                    policy_loss, stats = ppo_policy_loss(logprobs, b["old_logprobs"], b["advantages"], b["mask"], cfg.clip_range)
                    value_loss, value_clip = ppo_value_loss(values.float(), b["old_values"], b["returns"], b["mask"],
                                                            cfg.value_clip_range)
                    loss = (policy_loss + cfg.value_coef * value_loss) * (len(micro) / len(mine))
                    runtime.accelerator.backward(loss)
                with torch.no_grad():
                    entropy = masked_mean(entropy_from_logits(logits.float() / T), b["mask"])
                for key, value in (("policy_loss", policy_loss), ("value_loss", value_loss), ("clip_fraction", stats["clip_fraction"]),
                                   ("approx_kl", stats["approx_kl"]), ("value_clip_fraction", value_clip), ("entropy", entropy)):
                    sums[key] = sums.get(key, 0.0) + float(value.detach()) * len(micro)
                sums["rows"] = sums.get("rows", 0.0) + len(micro)
            grad_norm = runtime.accelerator.clip_grad_norm_(params, max_norm)
            if grad_norm is not None:  # DeepSpeed clips inside its engine (gradient_clipping) and reports nothing here
                sums["grad_norm"] = sums.get("grad_norm", 0.0) + float(grad_norm) * len(mine)
            optimizer.step()
    sums = runtime.sum_floats(sums)
    rows = sums.pop("rows")
    return {k: v / rows for k, v in sums.items()}


@torch.no_grad()
def evaluate(model, tokenizer, scorer, prompts: list[Prompt], cfg: PPOConfig, runtime: Runtime,
             engine: RolloutEngine | None = None) -> dict:
    """Mean reward of one seeded sample per held-out prompt, overall and per language (prompts split over
    ranks, each share padded to the same length: sharded models need the same forwards on every rank)."""
    mine, real = runtime.padded_share(prompts)
    seeds = [derive_seed(cfg.seed, "eval", p.id) for p in mine]
    if engine is not None:
        generations = engine.generate([p.ids for p in mine], cfg.sampling, seeds)
    else:
        with runtime.unwrapped_for_generation(model) as unwrapped:
            generations = generate(unwrapped.policy, tokenizer, [p.ids for p in mine], cfg.sampling, seeds, progress=False)
    scores = scorer(mine, [g.text for g in generations], [g.finished for g in generations]).tolist() if mine else []
    pairs = runtime.gather_rows(list(zip([p.lang for p in mine], scores))[:real])
    by_lang: dict[str, list[float]] = {}
    for lang, value in pairs:
        by_lang.setdefault(lang, []).append(value)
    return {"reward": sum(v for _, v in pairs) / len(pairs),
            "languages": {lang: sum(v) / len(v) for lang, v in sorted(by_lang.items())}}


def _step_record(step: int, rollout: Rollout, stats: dict, update_s: float) -> dict:
    kl_per_seq = rollout.kl.sum(dim=1)
    record = {"step": step, "reward": float(rollout.scores.mean()), "kl": float(kl_per_seq.mean()),
              "response_length": float(rollout.mask.sum(dim=1).mean()), "cut_off": float((~rollout.finished).float().mean()), **stats, **rollout.timings, "update_s": update_s}
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


def _save_policy(model, runtime: Runtime, path: Path, tokenizer_dir: str) -> None:
    """Write the policy as a Hugging Face directory (main rank; sharded states are gathered first, collectively)."""
    state = checkpointing.full_state_dict(model)
    if runtime.is_main:
        policy_state = None if state is None else {k[len("policy."):]: v for k, v in state.items() if k.startswith("policy.")}
        save_checkpoint(runtime.unwrap(model).policy, path, tokenizer_dir=tokenizer_dir, state_dict=policy_state)
    runtime.wait()


def _build(cfg: PPOConfig, runtime: Runtime):
    """(policy+critic, optimizer, frozen reference, tokenizer): trainables in fp32 for `prepare`, the
    reference loaded on the CPU and placed by `Runtime.frozen` (whole, sharded or offloaded)."""
    policy, tokenizer = load_policy(cfg.model, cfg.tokenizer, torch.device("cpu"))
    with runtime.loading_frozen():
        reference, _ = load_policy(cfg.reference or cfg.model, cfg.tokenizer, torch.device("cpu"))
    reference = runtime.frozen(reference, cfg.frozen_placement)
    critic = load_value_model(cfg.value_init or cfg.model) if cfg.value_model == "separate" else None
    if cfg.gradient_checkpointing:
        for m in (policy, critic):
            if m is not None:
                m.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model = PolicyWithValue(policy, critic)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(weight_decay_groups(params, cfg.optim.weight_decay), lr=cfg.optim.lr,
                                  betas=tuple(cfg.optim.betas), eps=cfg.optim.eps)
    return model, optimizer, reference, tokenizer


def rollout_engine(cfg: PPOConfig, tokenizer, runtime: Runtime) -> RolloutEngine | None:
    """This rank's vLLM engine with ``sampling.backend: vllm``, else None (sample from the policy itself).
    ``auto`` stays on HF here: the weight push into a real vLLM engine has not been run (docs/rlhf.md)."""
    if cfg.sampling.backend != "vllm":
        return None
    resolve_backend(cfg.sampling, cfg.model)  # vLLM installed and a GPU visible, or a one-line error
    return VLLMEngine(cfg.model, tokenizer, gpu_memory_utilization=cfg.vllm_gpu_memory)


def run(cfg: PPOConfig) -> dict:
    output = Path(cfg.output)
    runtime = Runtime(cfg.mixed_precision)
    runtime.shard(cfg.batch_size, "batch_size"), runtime.shard(cfg.mini_batch_size, "mini_batch_size")
    per_rank = cfg.mini_batch_size // runtime.world
    if runtime.accelerator.distributed_type == DistributedType.DEEPSPEED and cfg.micro_batch_size != per_rank:
        # DeepSpeed's engine steps after every backward (gradient_accumulation_steps: 1 in the shipped config)
        raise UserError(f"key 'micro_batch_size' is {cfg.micro_batch_size}; under DeepSpeed it must equal "
                        f"mini_batch_size / processes = {per_rank} (one backward per optimizer step)")
    if runtime.is_main:
        output.mkdir(parents=True, exist_ok=True)
        write_resolved_config(cfg, output, "ppo")
    torch.manual_seed(cfg.seed)
    model, optimizer, reference, tokenizer = _build(cfg, runtime)
    prompts, held, rejects = _load_prompts(cfg, tokenizer)
    if runtime.is_main:
        write_rejects(rejects, output)
    with runtime.loading_frozen():
        scorer = RewardScorer(cfg.reward, tokenizer, place=partial(runtime.frozen, placement=cfg.frozen_placement))
    engine = rollout_engine(cfg, tokenizer, runtime)
    beta = cfg.kl_beta if cfg.kl_beta is not None else default_beta(model.policy)
    tokenizer_dir = cfg.tokenizer or cfg.model
    history: list[dict] = []
    start_step = 0
    latest = checkpointing.latest(output)
    sharded = checkpointing.is_sharded(runtime.accelerator)
    if latest is not None and not sharded:
        state = checkpointing.load(latest, model, optimizer)
        start_step, history = state["step"], state["history"]
    model, optimizer = runtime.prepare(model, optimizer)
    if latest is not None and sharded:
        state = checkpointing.load(latest, model, optimizer, accelerator=runtime.accelerator)
        start_step, history = state["step"], state["history"]
    if latest is not None:
        log.info("ppo: resumed from %s (step %d)", latest, start_step)
        if engine is not None:  # the engine read the starting checkpoint from disk
            push_policy_weights(model, engine, runtime)
    best, best_step, since_best = _early_stop_state(history)
    eval_before = None
    if held and cfg.eval_every and start_step == 0:  # the starting policy's held-out reward: the baseline
        eval_before = evaluate(model, tokenizer, scorer, held, cfg, runtime, engine)
        if runtime.is_main:
            write_json(output / "eval_before.json", eval_before)
    elif (output / "eval_before.json").is_file():
        eval_before = read_json(output / "eval_before.json")
    stopped_early = since_best >= cfg.patience > 0
    bar = phase(range(start_step, cfg.steps), desc="ppo", unit="step", initial=start_step, total=cfg.steps,
               disable=not runtime.is_main)
    step = start_step
    for step in bar:
        if stopped_early:
            break
        batch = batch_prompts(prompts, step, cfg.batch_size, cfg.seed)
        rollout = collect(model, reference, tokenizer, scorer, batch, cfg.sampling, rollout_seeds(cfg.seed, step, batch),
                          beta=beta, gamma=cfg.gamma, lam=cfg.lam, shaping=cfg.reward_shaping,
                          missing_eos_penalty=cfg.missing_eos_penalty, micro_batch_size=cfg.micro_batch_size,
                          runtime=runtime, engine=engine)
        start = time.perf_counter()
        stats = update(model, optimizer, rollout, cfg, step, runtime)
        update_s = time.perf_counter() - start
        if engine is not None:  # the next rollout must come from the policy just updated
            start = time.perf_counter()
            push_policy_weights(model, engine, runtime)
            rollout.timings["weight_sync_s"] = time.perf_counter() - start
        record = _step_record(step + 1, rollout, stats, update_s)
        if held and cfg.eval_every and (step + 1) % cfg.eval_every == 0:
            result = evaluate(model, tokenizer, scorer, held, cfg, runtime, engine)
            record["eval_reward"] = result["reward"]
            record.update({f"eval_reward/{lang}": v for lang, v in result["languages"].items()})
            if result["reward"] > best:
                best, best_step, since_best = result["reward"], step + 1, 0
                _save_policy(model, runtime, output / "model", tokenizer_dir)
            else:
                since_best += 1
                stopped_early = since_best >= cfg.patience > 0
        history.append(record)
        bar.set_postfix(reward=f"{record['reward']:.3f}", kl=f"{record['kl']:.3f}", clip=f"{record['clip_fraction']:.2f}")
        if runtime.is_main:
            write_jsonl(output / "metrics.jsonl", history)
        if (cfg.save_every and (step + 1) % cfg.save_every == 0) or step + 1 == cfg.steps or stopped_early:
            checkpointing.save(output, step + 1, model, optimizer, history, runtime.accelerator, cfg.keep_checkpoints)
    bar.close()
    if not held or not cfg.eval_every or best_step == 0:
        _save_policy(model, runtime, output / "model", tokenizer_dir)
        best_step = history[-1]["step"] if history else 0
    summary = {
        "output": str(output / "model"), "steps": history[-1]["step"] if history else 0, "best_step": best_step,
        "eval_before": eval_before, "best_eval_reward": best if best > float("-inf") else None, "stopped_early": stopped_early, "kl_beta": beta,
        "prompts": {"train": len(prompts), "held_out": len(held), "rejected": rejects.count}, "processes": runtime.world,
        "reward_info": scorer.info, "first": history[0] if history else None, "last": history[-1] if history else None,
        "config": to_dict(cfg),
    }
    if runtime.is_main:
        write_json(output / "summary.json", summary)
    return summary
