"""`polyglot-llama dpo`: direct preference optimisation of a chat (SFT) model on the `reward` stage's pairs.

The policy starts from an SFT checkpoint; the frozen reference is the same checkpoint unless ``reference``
names another. The reference is run once, before training, over every training and held-out pair, and its
summed answer log-probs are cached with the run (``reference_logps.safetensors``, keyed by a fingerprint
of the token rows and the reference weights), so the reference is not in memory while the policy trains
and a resumed run does not recompute it. Each micro-batch holds B pairs as 2B rows (chosen rows first) in
one forward pass, in length-sorted micro-batches, through the one training loop.

Losses (`train.losses`): sigmoid DPO with label smoothing, IPO, and ODPO with a per-pair offset from the
Llama 2 margin table of the pair's strength label. Defaults follow Rafailov et al. 2023 (§6 and App. B):
β 0.1, lr 1e-6 with 150 linear warm-up steps, batch 64 pairs.

Output: the trained model (Hugging Face directory, the tokenizer with its chat template), plus
``dpo_results.json`` (held-out reward accuracy and margins per language and per strength, before and after,
log-prob trends and the KL to the reference; `eval`'s ``preference`` task computes the same for any
checkpoint), ``rejected_pairs.jsonl``, ``training/`` (checkpoints, ``metrics.jsonl``, TensorBoard logs) and
``reference_logps.safetensors``.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import torch

from ..chat import check_template_spec, install_chat_template, resolve_template
from ..config import to_dict, write_resolved_config
from ..errors import UserError
from ..io import RejectCounter, write_json, write_jsonl
from ..model.checkpoint import check_vocab_matches, load_causal_lm, load_tokenizer
from ..model.reward_model import context_length
from ..runtime import autocast_for
from . import dpo_data
from .dpo_metrics import preference_metrics, summarize_rewards, token_kl_to_reference, write_tensorboard
from .loop import LoopConfig, OptimConfig, ScheduleConfig, StepOutput, distributed_state, save_final, train
from .loop import resolve_grad_accum as shared_resolve_grad_accum
from .losses import dpo_loss, ipo_loss, sequence_logprobs
from .reward_data import PairDataConfig, describe, load_pairs, split_validation

log = logging.getLogger(__name__)


@dataclass
class DPODataConfig(PairDataConfig):
    """Preference pairs in the `reward` stage's format; validation pairs give per-language reward accuracy."""


@dataclass
class LoraOptions:
    r: int = 0
    """LoRA rank; 0 trains all weights. The adapter is merged into the saved model."""
    alpha: float = 16.0
    """LoRA scaling numerator (update = alpha / r · B·A)."""
    dropout: float = 0.05
    """Dropout on the adapter input."""
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    """Linear layers that get an adapter."""

    def __post_init__(self):
        if self.r < 0:
            raise UserError(f"key 'lora.r' is {self.r}; give a rank > 0, or 0 to train all weights")


@dataclass
class DPOConfig:
    model: str = ""
    """Policy start: the chat (SFT) checkpoint directory."""
    output: str = ""
    """Directory to write the aligned model, results, rejects and training state to."""
    reference: str = ""
    """Frozen reference model (default: the same checkpoint as 'model')."""
    tokenizer: str = ""
    """Tokenizer directory (default: the model directory)."""
    chat_template: str = ""
    """Chat format: '' (the tokenizer's own chat_template, Llama 2's when it has none), 'llama2', 'tokenizer' (its own, required), a Jinja string or a Jinja file."""
    loss: Literal["sigmoid", "ipo", "odpo"] = "sigmoid"
    """sigmoid: DPO (Rafailov et al. 2023); ipo: IPO (Azar et al. 2023); odpo: DPO with a per-pair offset from the strength label (Amini et al. 2024)."""
    beta: float = 0.1
    """β of the implicit reward β·log π/π_ref (DPO paper's default, Rafailov et al. 2023 §6); larger keeps the policy closer to the reference."""
    label_smoothing: float = 0.0
    """ε: assumed probability that a pair's label is flipped (cDPO, Mitchell 2023); sigmoid and odpo only."""
    tau: float = 0.1
    """IPO's regulariser τ: the loss pulls the per-token log-ratio gap to 1/(2τ). The IPO paper gives no default; 0.1 is TRL's."""
    offset_table: Literal["small", "large"] = "small"
    """Llama 2 margin table (Table 27) for the odpo offset: small 1, 2/3, 1/3, 0; large 3, 2, 1, 0 (significantly … negligibly better)."""
    offset_scale: float = 1.0
    """ODPO's α: offset Δ = α·m(strength), in implicit-reward units (Amini et al. 2024 scale the offset by α; 1 keeps the table as is)."""
    batch_size: int = 64
    """Global batch in pairs per optimizer step (DPO paper: 64); sets loop.grad_accum = batch_size / (micro_batch_size × processes). 0 = use loop.grad_accum."""
    data: DPODataConfig = field(default_factory=DPODataConfig)
    lora: LoraOptions = field(default_factory=LoraOptions)
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(epochs=1.0, micro_batch_size=8, log_every=10))
    """micro_batch_size counts pairs (2 rows each), grouped by length."""
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-6, weight_decay=0.0))
    schedule: ScheduleConfig = field(default_factory=lambda: ScheduleConfig(kind="constant", warmup_steps=150))
    eval_batch_size: int = 16
    """Pairs per forward in the reference pass and the held-out evaluation."""

    def __post_init__(self):
        if not self.model:
            raise UserError("key 'model' is required: the chat (SFT) checkpoint to start the policy from")
        check_template_spec(self.chat_template)
        if not self.output:
            raise UserError("key 'output' is required: the directory to write the aligned model to")
        for key in ("beta", "tau"):
            if getattr(self, key) <= 0:
                raise UserError(f"key '{key}' is {getattr(self, key)}; it must be positive (DPO paper: beta 0.1)")
        if not 0 <= self.label_smoothing < 0.5:
            raise UserError(f"key 'label_smoothing' is {self.label_smoothing}; give a flip probability in [0, 0.5)")
        if self.batch_size < 0 or self.eval_batch_size < 1:
            raise UserError("keys 'batch_size' (≥ 0) and 'eval_batch_size' (≥ 1) are out of range")


def resolve_grad_accum(cfg: DPOConfig, world_size: int) -> int:
    """Micro-batches per optimizer step so that micro_batch_size × accumulation × processes = batch_size (as SFT)."""
    return shared_resolve_grad_accum(cfg.batch_size or cfg.loop.global_batch_size, cfg.loop.micro_batch_size,
                                     world_size, cfg.loop.grad_accum, key="batch_size" if cfg.batch_size else
                                     "loop.global_batch_size")


def count_pairs(batch: dict) -> int:
    """Loss units of a DPO batch: its pairs (the loss is a mean over pairs), not its 2B rows or their tokens."""
    return int(batch["ref_chosen"].numel())


def dpo_step(model, batch: dict, *, loss: str, beta: float, label_smoothing: float, tau: float, offset_scale: float) -> StepOutput:
    """Policy log-probs of 2B rows (chosen first) in one forward → the chosen loss over B pairs, with the cached
    reference log-probs of the batch. Metrics: implicit-reward accuracy and margin, mean answer log-probs."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
    logps, tokens = sequence_logprobs(logits, batch["labels"])  # [2B] nats, [2B] answer tokens
    chosen, rejected = logps.chunk(2)
    ref_chosen, ref_rejected = batch["ref_chosen"], batch["ref_rejected"]
    if loss == "ipo":
        chosen_tokens, rejected_tokens = tokens.chunk(2)
        value = ipo_loss(chosen, rejected, ref_chosen, ref_rejected, chosen_tokens, rejected_tokens, tau)
    else:
        offsets = offset_scale * batch["offset"] if loss == "odpo" else None
        value = dpo_loss(chosen, rejected, ref_chosen, ref_rejected, beta, label_smoothing, offsets)
    with torch.no_grad():
        chosen_reward = beta * (chosen.detach() - ref_chosen)
        rejected_reward = beta * (rejected.detach() - ref_rejected)
        margin = chosen_reward - rejected_reward
    return StepOutput(loss=value, n_tokens=int(chosen.numel()), metrics={
        "reward_accuracy": float((margin > 0).float().mean()), "reward_margin": float(margin.mean()),
        "chosen_reward": float(chosen_reward.mean()), "rejected_reward": float(rejected_reward.mean()),
        "chosen_logp": float(chosen.detach().mean()), "rejected_logp": float(rejected.detach().mean())})


def reference_pass(cfg: DPOConfig, examples: list[dict], pad_id: int, cache: Path) -> None:
    """Attach ``ref_chosen``/``ref_rejected`` to every example: from the cache when it matches, else by one
    pass of the reference model (sharded over processes, gathered), written to the cache, then freed."""
    from accelerate.utils import gather_object

    reference = cfg.reference or cfg.model
    key = dpo_data.fingerprint(examples, reference)
    cached = dpo_data.read_reference_cache(cache, key, len(examples))
    state = distributed_state()
    if cached is None:
        model = load_causal_lm(reference).to(state.device).eval()
        mine = list(range(state.process_index, len(examples), state.num_processes))
        chosen, rejected = dpo_data.answer_logprobs(model, [examples[i] for i in mine], pad_id, cfg.eval_batch_size,
                                                    autocast_for(state.device, cfg.loop.mixed_precision),
                                                    progress="reference pass" if state.is_main_process else "")
        del model
        gc.collect()
        merged = dict(gather_object(list(zip(mine, zip(chosen, rejected)))))
        chosen, rejected = [merged[i][0] for i in range(len(examples))], [merged[i][1] for i in range(len(examples))]
        if state.is_main_process:
            dpo_data.write_reference_cache(cache, key, chosen, rejected)
        state.wait_for_everyone()
        log.info("dpo: reference log-probs of %d pairs computed and cached in %s", len(examples), cache)
    else:
        chosen, rejected = cached
        log.info("dpo: reference log-probs of %d pairs read from %s", len(examples), cache)
    for example, c, r in zip(examples, chosen, rejected):
        example["ref_chosen"], example["ref_rejected"] = c, r


def _load_policy(cfg: DPOConfig):
    model = load_causal_lm(cfg.model)
    if not cfg.lora.r:
        return model
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise UserError("key 'lora.r' is set but peft is not installed: pip install 'polyglot-llama[lora]', or set lora.r 0") from None

    return get_peft_model(model, LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                                            target_modules=list(cfg.lora.target_modules), task_type="CAUSAL_LM"))


def _by_language(examples: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for example in examples:
        out.setdefault(example["lang"], []).append(example)
    return dict(sorted(out.items()))


def run(cfg: DPOConfig) -> dict:
    output = Path(cfg.output)
    tokenizer_dir = cfg.tokenizer or cfg.model
    tokenizer = load_tokenizer(tokenizer_dir)
    template = resolve_template(cfg.chat_template, tokenizer, tokenizer_dir)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    grad_accum = resolve_grad_accum(cfg, world_size)
    output.mkdir(parents=True, exist_ok=True)
    write_resolved_config(cfg, output, "dpo")

    rejects = RejectCounter()
    pairs = load_pairs(cfg.data.train, rejects, "train", cfg.data.default_lang)
    if cfg.data.validation:
        train_pairs, validation_pairs = pairs, load_pairs(cfg.data.validation, rejects, "validation", cfg.data.default_lang)
    else:
        train_pairs, validation_pairs = split_validation(pairs, cfg.data.validation_fraction, cfg.loop.seed)
    policy = _load_policy(cfg)
    check_vocab_matches(policy, tokenizer, cfg.model, tokenizer_dir)
    max_length = cfg.data.max_length or context_length(policy, tokenizer)
    encode = partial(dpo_data.encode_pairs, tokenizer=tokenizer, template=template, max_length=max_length,
                     offset_table=cfg.offset_table, rejects=rejects)
    train_examples, validation_examples = encode(train_pairs), encode(validation_pairs)
    rejects_file = output / "rejected_pairs.jsonl"
    write_jsonl(rejects_file, rejects.rejected)
    if rejects.count:
        log.warning("dpo: skipped %d pairs: %s (see %s)", rejects.count, rejects.by_reason(), rejects_file)
    if not train_examples:
        raise UserError(f"{cfg.data.train}: no usable preference pairs ({rejects.count} skipped: {rejects.by_reason()}); see {rejects_file}")

    # The policy waits on the CPU while the reference has the accelerator to itself.
    reference_pass(cfg, train_examples + validation_examples, pad_id, output / dpo_data.REFERENCE_CACHE)
    step = partial(dpo_step, loss=cfg.loss, beta=cfg.beta, label_smoothing=cfg.label_smoothing, tau=cfg.tau,
                   offset_scale=cfg.offset_scale)
    device = distributed_state().device
    autocast = autocast_for(device, cfg.loop.mixed_precision)  # the loop's autocast, for passes outside it
    if cfg.reference in ("", cfg.model):
        # The policy starts as the reference: every implicit reward is exactly 0 (a second forward would
        # only add round-off, which decides the sign of a zero margin and so the accuracy).
        before = summarize_rewards(validation_examples, [(0.0, 0.0, e["ref_chosen"], e["ref_rejected"])
                                                         for e in validation_examples]) if validation_examples else {}
    else:
        before = preference_metrics(policy.to(device), validation_examples, cfg.beta, pad_id, cfg.eval_batch_size, autocast)
        policy.to("cpu")

    # The loop reads one pre-grouped micro-batch per micro-step: length-sorted groups of micro_batch_size pairs.
    loop = dataclasses.replace(cfg.loop, micro_batch_size=1, grad_accum=grad_accum, global_batch_size=0)
    groups = dpo_data.length_grouped_batches(train_examples, cfg.loop.micro_batch_size, cfg.loop.seed)
    eval_sets = {lang: dpo_data.length_grouped_batches(ex, cfg.eval_batch_size, cfg.loop.seed)
                 for lang, ex in _by_language(validation_examples).items()}
    result = train(policy, groups, partial(dpo_data.collate, pad_id=pad_id), step, output / "training", loop=loop,
                   count_fn=count_pairs,
                   optim=cfg.optim, schedule=cfg.schedule, eval_sets=eval_sets, run_config=to_dict(cfg))
    trained = result.pop("model")
    summary = {"output": str(output), "loss": cfg.loss, "beta": cfg.beta, "steps": result["steps"],
               "grad_accum": grad_accum, "train_loss": result["train_loss"], "tokens_per_second": result["tokens_per_second"],
               "training_pairs": describe(train_examples), "validation_pairs": len(validation_examples),
               "rejected": {"count": rejects.count, "by_reason": rejects.by_reason(), "file": str(rejects_file)}}
    if cfg.lora.r:
        trained = trained.merge_and_unload()
    save_final(trained, output, tokenizer_dir=tokenizer_dir)
    if not result["is_main_process"]:
        return summary
    install_chat_template(output, template)
    # Sharded (FSDP/DeepSpeed) weights live across ranks: score the saved directory instead.
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        trained = load_causal_lm(output)
    trained.to(device)
    after = preference_metrics(trained, validation_examples, cfg.beta, pad_id, cfg.eval_batch_size, autocast)
    reference = load_causal_lm(cfg.reference or cfg.model).to(device).eval()
    kl = token_kl_to_reference(trained, reference, validation_examples, pad_id, cfg.eval_batch_size, autocast)
    del reference
    results = {"stage": "dpo", "model": str(output), "reference": cfg.reference or cfg.model, "loss": cfg.loss,
               "beta": cfg.beta, "steps": result["steps"], "before": before, "after": after, "kl_to_reference": kl}
    write_json(output / "dpo_results.json", results)
    with open(output / "training" / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"step": result["steps"], "preference_eval": after, "kl_to_reference": kl}) + "\n")
    write_tensorboard(output / "training" / "logs" / "preference", {0: before, result["steps"]: after}, kl, result["steps"])
    summary.update(validation=after, validation_before=before, kl_to_reference=kl)
    overall = after.get("overall", {})
    if overall:
        log.info("dpo: held-out reward accuracy %.3f (before %.3f), margin %.3f, KL to reference %.4f nats/token",
                 overall["accuracy"], before["overall"]["accuracy"], overall["margin"], kl.get("overall", float("nan")))
    return summary
