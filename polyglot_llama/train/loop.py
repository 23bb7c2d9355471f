"""THE training loop: every stage (pretrain, SFT, reward, rejection-sampling fine-tuning) runs through `train`.

Stages differ only in dataset, collator and step function. Gradient accumulation, clipping, the learning-
rate schedule, checkpoint/resume, evaluation, logging and throughput exist here once.

Data order is a pure function of (seed, epoch, micro-step): micro-step p of the run reads examples
``perm_epoch[(p·W + r)·m : (p·W + r + 1)·m]`` on rank r of W with micro-batch m. A resumed run therefore
continues with exactly the batches the uninterrupted run would have read, and one process with
accumulation A·W sees the same global batches as W processes with accumulation A.

The loss is normalised per counted unit (token, or pair for reward models) over the whole optimizer step,
as torchtitan does: before the forwards, the step's micro-batches are collated and their units counted on
every rank, one all-reduce gives the global count G, and each micro-batch backpropagates
``loss_sum · W / G`` (W undoes the averaging of DDP/FSDP gradient reduction). A 2-token and an 11-token
example thus weigh 2 : 11 whatever the micro-batch size, accumulation and process count, and the logged
training loss Σ loss_sum / G is the same token-weighted estimator as the validation loss.
"""

from __future__ import annotations

import json
import logging
import math
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import torch

from ..errors import UserError
from ..progress import phase
from ..runtime import canonical_name as _canonical_name
from ..runtime import resolve_precision, use_cpu
from . import checkpointing
from .heap import release_free_heap
from .losses import count_lm_targets
from .rmsnorm import recompute_norm_outputs, use_lean_rmsnorm
from .swiglu import use_lean_mlp
from .throughput import ThroughputMeter

log = logging.getLogger(__name__)


@dataclass
class OptimConfig:
    lr: float = 3.0e-4
    """Peak learning rate (Llama 2: 3e-4 for 7B/13B pretraining, 1.5e-4 for 34B/70B)."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    """AdamW (β1, β2) (Llama 2: 0.9, 0.95)."""
    eps: float = 1.0e-5
    """AdamW epsilon (Llama 2: 1e-5)."""
    weight_decay: float = 0.1
    """Decoupled weight decay on matrices; 1-D parameters (norm gains) are not decayed."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this value (0 disables)."""

    def __post_init__(self):
        if self.lr <= 0:
            raise UserError(f"key 'optim.lr' is {self.lr}; it must be positive")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise UserError(f"key 'optim.betas' is {self.betas}; give two numbers in [0, 1), e.g. [0.9, 0.95]")


@dataclass
class ScheduleConfig:
    kind: Literal["cosine", "constant"] = "cosine"
    """cosine: linear warm-up then cosine decay to final_lr_ratio × lr; constant: warm-up then flat."""
    warmup_steps: int = 2000
    """Linear warm-up length in optimizer steps (Llama 2: 2000)."""
    warmup_ratio: float = 0.0
    """If > 0, warm-up is this fraction of the total steps instead (reward models: 0.03)."""
    min_warmup_steps: int = 0
    """Lower bound on the warm-up when warmup_ratio is used (reward models: 5)."""
    final_lr_ratio: float = 0.1
    """Learning rate at the end of the cosine, as a fraction of the peak (Llama 2: 0.1)."""
    max_warmup_ratio: float = 0.1
    """warmup_steps is capped at this fraction of the stage's steps (at least 1), so a 500-step stage with warmup_steps 2000 warms up for 50 and still trains at its peak rate; 0 = no cap."""

    def __post_init__(self):
        if not 0 <= self.max_warmup_ratio <= 1 or not 0 <= self.warmup_ratio <= 1:
            raise UserError("keys 'schedule.warmup_ratio'/'schedule.max_warmup_ratio' must be in [0, 1]")

    def warmup_for(self, total_steps: int) -> int:
        """Warm-up steps of a stage of ``total_steps`` optimizer steps; never the whole stage."""
        if self.warmup_ratio > 0:
            warmup = max(self.min_warmup_steps, int(self.warmup_ratio * total_steps))
        else:
            warmup = self.warmup_steps
            if self.max_warmup_ratio > 0:
                warmup = min(warmup, max(1, int(self.max_warmup_ratio * total_steps)))
        return min(warmup, max(total_steps - 1, 0))

    def lr_factor(self, step: int, total_steps: int) -> float:
        """Multiplier of the peak lr for optimizer step ``step`` (0-based) of ``total_steps``."""
        warmup = self.warmup_for(total_steps)
        if step < warmup:
            return (step + 1) / warmup
        if self.kind == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total_steps - warmup)
        cosine = 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
        return self.final_lr_ratio + (1.0 - self.final_lr_ratio) * cosine


@dataclass
class LoopConfig:
    max_steps: int = 0
    """Optimizer steps to run; 0 means `epochs` passes over the training data."""
    epochs: float = 1.0
    """Passes over the training data when max_steps is 0."""
    micro_batch_size: int = 8
    """Sequences per process per forward pass."""
    grad_accum: int = 1
    """Micro-batches accumulated per optimizer step. Global batch = micro_batch_size × grad_accum × processes."""
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    """auto: bf16 on a GPU that supports it, fp32 on CPU (bf16 autocast is 25-40× slower on AVX2 CPUs)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, about 30 % more compute."""
    eval_every: int = 0
    """Validate every N optimizer steps (and always before the first and after the last step); 0 = only then."""
    save_every: int = 0
    """Write a resumable checkpoint every N optimizer steps (and at the end); 0 = only at the end."""
    keep_checkpoints: int = 2
    """How many of the newest checkpoints to keep."""
    log_every: int = 10
    """Log training metrics every N optimizer steps."""
    seed: int = 0
    """Seed of the data order and of any sampling in the step function."""
    resume: bool = True
    """Resume from the newest checkpoint in the output directory if there is one."""
    max_eval_batches: int = 0
    """Cap on validation batches per language (0 = all)."""
    global_batch_size: int = 0
    """Examples (rows; pairs for reward models) per optimizer step over all processes; sets grad_accum = global_batch_size / (micro_batch_size × processes) at launch. 0 = grad_accum as given."""

    def __post_init__(self):
        if self.global_batch_size < 0:
            raise UserError(f"key 'loop.global_batch_size' is {self.global_batch_size}; give a positive number or 0")
        for key in ("micro_batch_size", "grad_accum", "keep_checkpoints", "log_every"):
            if getattr(self, key) < 1:
                raise UserError(f"key 'loop.{key}' is {getattr(self, key)}; it must be at least 1")
        if self.max_steps < 0 or (self.max_steps == 0 and self.epochs <= 0):
            raise UserError("keys 'loop.max_steps'/'loop.epochs': give max_steps > 0 or epochs > 0")


@dataclass
class StepOutput:
    loss: torch.Tensor
    """Scalar, differentiable; the mean over the batch's counted units."""
    n_tokens: int
    """How many units (labelled tokens; pairs for reward models) the loss averaged over: the loop weighs
    micro-batches by it in training and validation."""
    metrics: dict[str, float] = field(default_factory=dict)


StepFn = Callable[[torch.nn.Module, dict], StepOutput]


def distributed_state():
    """accelerate's process state, created the way `Accelerator` creates it.

    A bare ``PartialState()`` ignores ACCELERATE_USE_CPU and, created first, makes every torchrun rank on a
    CPU machine believe it is the only (main) process.
    """
    from accelerate import PartialState

    return PartialState(cpu=use_cpu())


def _make_accelerator(loop: LoopConfig, output_dir: Path, grad_accum: int):
    from accelerate import Accelerator
    from accelerate.utils import parse_flag_from_env

    precision = resolve_precision(loop.mixed_precision)
    # The loop accumulates itself; only DeepSpeed's engine must know the count (its "auto" resolves to it).
    # Elsewhere accelerate would divide every loss by it a second time.
    accumulate = grad_accum if parse_flag_from_env("ACCELERATE_USE_DEEPSPEED") else 1
    return Accelerator(mixed_precision=precision, log_with="tensorboard", project_dir=str(output_dir / "logs"),
                       gradient_accumulation_steps=accumulate)


def weight_decay_groups(params: list[torch.nn.Parameter], weight_decay: float) -> list[dict]:
    """AdamW parameter groups: matrices decay, 1-D parameters (norm gains, biases) do not. PPO uses it too."""
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class _BatchOrder:
    """Which examples rank r reads at micro-step p (see the module docstring)."""

    def __init__(self, n_examples: int, micro: int, world: int, rank: int, seed: int):
        self.n, self.micro, self.world, self.rank, self.seed = n_examples, micro, world, rank, seed
        self.steps_per_epoch = n_examples // (micro * world)
        self._epoch, self._perm = -1, None

    def indices(self, micro_step: int) -> list[int]:
        epoch, within = divmod(micro_step, self.steps_per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=generator)
        start = (within * self.world + self.rank) * self.micro
        return self._perm[start:start + self.micro].tolist()


def _rows(dataset, indices: list[int]) -> list:
    """Examples at ``indices``: one batched read where the dataset supports it (an Arrow dataset does)."""
    fetch = getattr(dataset, "__getitems__", None)
    return fetch(indices) if fetch is not None else [dataset[i] for i in indices]


@torch.no_grad()
def evaluate(model, eval_sets: dict[str, Any], collate_fn, step_fn: StepFn, accelerator, micro_batch_size: int,
             max_batches: int = 0) -> dict[str, dict[str, float]]:
    """Token-weighted validation loss and perplexity per language, sharded over processes."""
    model.eval()
    results = {}
    for lang, dataset in eval_sets.items():
        starts = list(range(0, len(dataset), micro_batch_size))
        if max_batches:
            starts = starts[:max_batches]
        total = torch.zeros(2, dtype=torch.float64, device=accelerator.device)  # [Σ loss·n, Σ n]
        mine = starts[accelerator.process_index::accelerator.num_processes]
        # Every rank runs the same number of forwards: DDP broadcasts buffers (rotary inv_freq) and FSDP
        # gathers weights inside each forward, so a rank with one batch fewer leaves the others waiting
        # forever. A rank out of batches re-runs the first one and does not count it.
        for k in range(math.ceil(len(starts) / accelerator.num_processes)):
            start = mine[k] if k < len(mine) else starts[0]
            batch = collate_fn(_rows(dataset, list(range(start, min(start + micro_batch_size, len(dataset))))))
            batch = {k_: v.to(accelerator.device) if torch.is_tensor(v) else v for k_, v in batch.items()}
            with accelerator.autocast():
                out = step_fn(model, batch)
            if k < len(mine):
                total += torch.tensor([float(out.loss) * out.n_tokens, out.n_tokens], dtype=torch.float64, device=accelerator.device)
        total = accelerator.reduce(total, reduction="sum")
        loss = float(total[0] / total[1]) if total[1] > 0 else float("nan")
        results[lang] = {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "tokens": int(total[1])}
    model.train()
    return results


def resolve_grad_accum(global_batch_size: int, micro_batch_size: int, world_size: int, grad_accum: int = 1,
                       key: str = "loop.global_batch_size") -> int:
    """Micro-batches per optimizer step so that micro_batch_size × accumulation × processes = global_batch_size
    (0: keep ``grad_accum``). Every stage resolves its batch here, so 8 GPUs train on the same global batch
    as one."""
    if global_batch_size == 0:
        return grad_accum
    per_step = micro_batch_size * world_size
    if global_batch_size % per_step:
        raise UserError(f"key '{key}' is {global_batch_size}, not a multiple of loop.micro_batch_size × processes "
                        f"= {micro_batch_size} × {world_size}; change one of them")
    return global_batch_size // per_step


def _named_trainable(model, params: list[torch.nn.Parameter] | None) -> list[str]:
    """Names of the parameters to optimise, taken before `accelerator.prepare` replaces the tensors."""
    if params is None:
        return [name for name, p in model.named_parameters() if p.requires_grad]
    by_id = {id(p): name for name, p in model.named_parameters()}
    missing = [p for p in params if id(p) not in by_id]
    if missing:
        raise ValueError(f"{len(missing)} of the given params are not parameters of the model")
    return [by_id[id(p)] for p in params]


def _resolve(model, names: list[str]) -> list[torch.nn.Parameter]:
    """The prepared model's parameters of those names (FSDP2 swaps every parameter for a sharded one)."""
    by_name = {_canonical_name(n): p for n, p in model.named_parameters()}
    return [by_name[_canonical_name(n)] for n in names]


def count_lm_tokens(batch: dict) -> int:
    """Units of a causal-LM batch: labelled next-token targets (the default ``count_fn`` of `train`)."""
    if "labels" not in batch:
        raise ValueError("batch has no 'labels': pass train(count_fn=...) that counts the step's loss units")
    return count_lm_targets(batch["labels"])


def train(model, train_data, collate_fn: Callable, step_fn: StepFn, output_dir: str | Path, *,
          loop: LoopConfig, optim: OptimConfig, schedule: ScheduleConfig, eval_sets: dict[str, Any] | None = None,
          params: list[torch.nn.Parameter] | None = None,
          after_optimizer_step: Callable[[torch.nn.Module], None] | None = None,
          before_optimizer_step: Callable[[torch.nn.Module], None] | None = None,
          count_fn: Callable[[dict], int] = count_lm_tokens,
          run_config: dict | None = None) -> dict:
    """Train ``model`` on ``train_data``; returns metrics, history and the trained (unwrapped) model.

    ``count_fn(batch)`` counts a collated micro-batch's loss units before its forward and must equal the
    ``n_tokens`` its `StepOutput` reports (labelled targets by default; reward models count pairs).
    ``before_optimizer_step`` / ``after_optimizer_step`` get the unwrapped prepared model after the step's
    backward passes / after the optimizer step (freezing stages mask gradients and restore rows there).
    """
    output_dir = Path(output_dir)
    grad_accum = resolve_grad_accum(loop.global_batch_size, loop.micro_batch_size, distributed_state().num_processes,
                                    loop.grad_accum)
    accelerator = _make_accelerator(loop, output_dir, grad_accum)
    world, rank = accelerator.num_processes, accelerator.process_index
    deepspeed = accelerator.distributed_type == "DEEPSPEED"  # a str enum; accelerate is imported lazily
    order = _BatchOrder(len(train_data), loop.micro_batch_size, world, rank, loop.seed)
    if order.steps_per_epoch == 0:
        raise UserError(
            f"the training set has {len(train_data)} examples, fewer than one global micro-batch "
            f"({loop.micro_batch_size} × {world} processes); add data or lower loop.micro_batch_size"
        )
    total_steps = loop.max_steps or max(1, int(loop.epochs * order.steps_per_epoch) // grad_accum)

    if loop.gradient_checkpointing and hasattr(model, "gradient_checkpointing_enable"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    # Off under DeepSpeed: ZeRO-3 gathers down_proj's weight in that module's own hooks, which the lean MLP
    # skips; the lean norms have not run under its partitioning either.
    lean_norms = 0
    if not deepspeed:
        use_lean_mlp(model)  # same math; the MLPs keep 2 fewer [N, F] activations each for the backward
        lean_norms = use_lean_rmsnorm(model)  # same math; each RMSNorm keeps one [N, H] activation fewer
    names = _named_trainable(model, params)
    if not names:
        raise UserError("no trainable parameters: check the freezing stage's 'trainable' setting")
    trainable = _resolve(model, names)
    # The fused kernel updates all tensors in one pass (CPU and CUDA; torchtitan uses it under FSDP2 too).
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in trainable)
    optimizer = torch.optim.AdamW(weight_decay_groups(trainable, optim.weight_decay), lr=optim.lr,
                                  betas=tuple(optim.betas), eps=optim.eps, fused=fused)

    start_step, history = 0, []
    latest = checkpointing.latest(output_dir) if loop.resume else None
    if latest is not None and not checkpointing.is_sharded(accelerator):
        state = checkpointing.load(latest, model, optimizer)
        start_step, history = state["step"], state["history"]
    model, optimizer = accelerator.prepare(model, optimizer)
    if latest is not None and checkpointing.is_sharded(accelerator):
        state = checkpointing.load(latest, model, optimizer, accelerator=accelerator)
        start_step, history = state["step"], state["history"]
    if latest is not None:
        log.info("resuming from %s (step %d of %d)", latest, start_step, total_steps)
    if deepspeed and accelerator.gradient_accumulation_steps != grad_accum:
        raise UserError(f"the DeepSpeed config accumulates {accelerator.gradient_accumulation_steps} micro-batches but "
                        f"the loop accumulates {grad_accum}: set gradient_accumulation_steps: auto in the DeepSpeed config")
    # Clip what the optimizer now holds: under FSDP2 the list taken above names replaced tensors.
    trainable = _resolve(accelerator.unwrap_model(model), names)
    # The linears reading a norm's output remake it in the backward instead of keeping it (same bits). Not
    # under FSDP, which frees and regathers the weights the remaking reads (untested there).
    remake_norms = recompute_norm_outputs if lean_norms and not checkpointing.is_sharded(accelerator) else nullcontext
    # CPU tensors live on the C heap: hand its free pages back before each forward and backward, so the
    # resident size follows what the phase touches rather than the fragmented heap's extent (see heap.py).
    trim_heap = release_free_heap if accelerator.device.type == "cpu" else (lambda: None)

    accelerator.init_trackers("train", config={k: v for k, v in (run_config or {}).items() if isinstance(v, (int, float, str, bool))})
    eval_sets = eval_sets or {}
    eval_before = {}
    if eval_sets and start_step == 0:
        eval_before = evaluate(model, eval_sets, collate_fn, step_fn, accelerator, loop.micro_batch_size, loop.max_eval_batches)
        _log_eval(accelerator, eval_before, 0)
    meter = ThroughputMeter(accelerator.unwrap_model(model), world)
    metrics_file = output_dir / "metrics.jsonl"
    bar = phase(total=total_steps, initial=start_step, desc="train", disable=not accelerator.is_main_process, dynamic_ncols=True)
    model.train()
    last_eval = eval_before
    for step in range(start_step, total_steps):
        # Set before the backward passes: DeepSpeed's engine steps inside the last one.
        lr = optim.lr * schedule.lr_factor(step, total_steps)  # set, not stepped: exact after a resume
        for group in optimizer.param_groups:
            group["lr"] = lr
        batches = [collate_fn(_rows(train_data, order.indices(step * grad_accum + k))) for k in range(grad_accum)]
        counts = [count_fn(batch) for batch in batches]
        units = int(accelerator.reduce(torch.tensor(sum(counts), dtype=torch.float64, device=accelerator.device), reduction="sum"))
        # DDP/FSDP average gradients over W ranks; DeepSpeed also divides by its accumulation steps.
        scale = world * (grad_accum if deepspeed else 1) / max(units, 1)
        step_loss = torch.zeros((), dtype=torch.float64, device=accelerator.device)
        extra: dict[str, float] = {}
        for k, batch in enumerate(batches):
            batch = {key: v.to(accelerator.device) if torch.is_tensor(v) else v for key, v in batch.items()}
            meter.add_tokens(batch)
            sync = k == grad_accum - 1
            if deepspeed:  # its engine reduces and steps in the backward pass that has sync_gradients set
                accelerator.gradient_state._set_sync_gradients(sync)
            with (accelerator.no_sync(model) if not sync and world > 1 else nullcontext()), accelerator.autocast():
                trim_heap()
                with remake_norms():
                    out = step_fn(model, batch)
                if out.n_tokens != counts[k]:
                    raise RuntimeError(f"count_fn counted {counts[k]} units but the step function averaged over "
                                       f"{out.n_tokens}: pass train(count_fn=...) matching the step")
                loss_sum = out.loss * out.n_tokens
                trim_heap()
                accelerator.backward(loss_sum * scale)
            step_loss += loss_sum.detach().double()
            for key, value in out.metrics.items():
                extra[key] = extra.get(key, 0.0) + float(value) / grad_accum
        if before_optimizer_step is not None:
            before_optimizer_step(accelerator.unwrap_model(model))
        grad_norm = accelerator.clip_grad_norm_(trainable, optim.grad_clip) if optim.grad_clip > 0 else None
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if after_optimizer_step is not None:
            after_optimizer_step(accelerator.unwrap_model(model))
        done = step + 1
        loss_value = float(accelerator.reduce(step_loss, reduction="sum")) / max(units, 1)
        if not math.isfinite(loss_value):
            raise RuntimeError(f"training loss became {loss_value} at step {done}; lower optim.lr or check the data")
        rates = meter.rates()
        record = {"step": done, "loss": loss_value, "lr": lr, "units": units, **rates, **extra}
        if grad_norm is not None:
            record["grad_norm"] = float(grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm)
        history.append(record)
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{record['lr']:.2e}", tok_s=f"{rates['tokens_per_second']:.0f}")
        if done % loop.log_every == 0 or done == total_steps:
            accelerator.log({f"train/{k}": v for k, v in record.items() if k != "step"}, step=done)
            if accelerator.is_main_process:
                with open(metrics_file, "a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")
        if eval_sets and ((loop.eval_every and done % loop.eval_every == 0) or done == total_steps):
            last_eval = evaluate(model, eval_sets, collate_fn, step_fn, accelerator, loop.micro_batch_size, loop.max_eval_batches)
            _log_eval(accelerator, last_eval, done)
            history[-1]["eval"] = last_eval
        if (loop.save_every and done % loop.save_every == 0) or done == total_steps:
            checkpointing.save(output_dir, done, model, optimizer, history, accelerator, loop.keep_checkpoints)
    bar.close()
    # Not end_training(): it destroys the process group, which the next stage and save_final still need.
    for tracker in accelerator.trackers:
        tracker.finish()
    if eval_sets and not last_eval:  # resumed after the last step: evaluate the restored model
        last_eval = evaluate(model, eval_sets, collate_fn, step_fn, accelerator, loop.micro_batch_size, loop.max_eval_batches)
    return {
        "steps": total_steps,
        "train_loss": history[-1]["loss"] if history else None,
        "history": history,
        "eval_before": eval_before,
        "eval": last_eval,
        "tokens_per_second": meter.overall_tokens_per_second(),
        "model": accelerator.unwrap_model(model),
        "is_main_process": accelerator.is_main_process,
    }


def _log_eval(accelerator, results: dict, step: int) -> None:
    flat = {}
    for lang, values in results.items():
        flat[f"eval/{lang}/loss"] = values["loss"]
        flat[f"eval/{lang}/perplexity"] = values["perplexity"]
    accelerator.log(flat, step=step)
    summary = ", ".join(f"{lang}: loss {v['loss']:.4f} ppl {v['perplexity']:.2f}" for lang, v in results.items())
    if accelerator.is_main_process:
        log.info("step %d validation: %s", step, summary)


def save_final(model, output: str | Path, tokenizer_dir: str | Path | None = None,
               extra_files: dict[str, str] | None = None) -> Path | None:
    """Write the trained model as a Hugging Face directory (main process only; FSDP states gathered first)."""
    from ..model.checkpoint import save_checkpoint

    state_dict = checkpointing.full_state_dict(model)  # collective under FSDP: every rank must call it
    if not distributed_state().is_main_process:
        return None
    return save_checkpoint(getattr(model, "module", model), output, tokenizer_dir=tokenizer_dir,
                           extra_files=extra_files, state_dict=state_dict)
