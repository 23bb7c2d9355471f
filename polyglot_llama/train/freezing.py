"""Freezing schedules for continued pretraining: which parameters a stage trains.

``new_embeddings`` trains only the embedding and LM-head rows of tokens added by `model extend`
(Chinese-LLaMA stage 1, EEVE's first stages): everything else is frozen, gradients of old rows are zeroed
before clipping and the optimizer step, and after each step the old rows are copied back from a snapshot,
because AdamW's decoupled weight decay would otherwise still shrink them. The old rows therefore stay
bit-identical. Both run on the model the loop prepared, finding the matrices by module at call time: FSDP2
replaces every parameter by a row-sharded DTensor, so tensors captured (or hooked) before it are stale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

import torch

from ..errors import UserError


@dataclass
class TrainStageConfig:
    name: str = "all"
    """Stage name; its checkpoints go to OUTPUT/stages/<index>_<name>/."""
    trainable: Literal["all", "new_embeddings", "embeddings", "lora"] = "all"
    """all: every parameter; embeddings: input embeddings + LM head only; new_embeddings: only the rows of new tokens; lora: LoRA adapters on the body + full embeddings and LM head."""
    steps: int = 0
    """Optimizer steps of this stage (0: loop.max_steps, or loop.epochs over the data)."""
    lr: float = 0.0
    """Peak learning rate of this stage (0: optim.lr)."""
    lora_rank: int = 64
    """trainable: lora: adapter rank r (Chinese-LLaMA-Alpaca-2's run_pt.sh: 64)."""
    lora_alpha: float = 128.0
    """trainable: lora: adapter updates are scaled by lora_alpha / lora_rank (Chinese-LLaMA-Alpaca-2: 128)."""
    lora_dropout: float = 0.05
    """trainable: lora: dropout on the adapter input (Chinese-LLaMA-Alpaca-2: 0.05)."""
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    """trainable: lora: Linear modules that get adapters (default: every attention and MLP projection)."""


@dataclass
class StagePlan:
    model: torch.nn.Module
    params: list[torch.nn.Parameter]
    after_optimizer_step: Callable[[torch.nn.Module], None] | None = None
    before_optimizer_step: Callable[[torch.nn.Module], None] | None = None
    finish: Callable[[torch.nn.Module], torch.nn.Module] = field(default=lambda model: model)


def _embedding_params(model) -> list[torch.nn.Parameter]:
    params = [model.get_input_embeddings().weight]
    head = model.get_output_embeddings()
    if head is not None and head.weight is not params[0]:  # tied weights appear once
        params.append(head.weight)
    return params


def _row_offset(tensor: torch.Tensor) -> int:
    """Index of the first row this rank holds (0 unless ``tensor`` is a row-sharded DTensor)."""
    from torch.distributed.tensor import DTensor

    if not isinstance(tensor, DTensor):
        return 0
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    return compute_local_shape_and_global_offset(tensor.shape, tensor.device_mesh, tensor.placements)[1][0]


def _local_rows(tensor: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(this rank's block of ``tensor``, the part of the row mask ``rows`` [V] it covers). A row-sharded
    DTensor (FSDP2: Shard(0)) holds rows offset..offset+n locally; a plain tensor holds all of them."""
    local = tensor.to_local() if hasattr(tensor, "to_local") else tensor
    start = _row_offset(tensor)
    return local, rows[start:start + local.shape[0]].to(local.device)


def _lora_stage(model, stage: TrainStageConfig) -> StagePlan:
    """LoRA on the transformer body with embeddings and LM head trained in full (Chinese-LLaMA stage 2).

    When the stage ends the adapters are merged into the base weights (W + (alpha/r)·B·A), so the next
    stage and the saved checkpoint are a plain Llama that loads without peft.
    """
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise UserError(f"stage '{stage.name}' uses trainable: lora, which needs peft: pip install 'polyglot-llama[lora]'") from None
    if stage.lora_rank < 1 or not stage.lora_targets:
        raise UserError(f"stage '{stage.name}': lora_rank must be ≥ 1 and lora_targets non-empty (e.g. [q_proj, v_proj])")
    config = LoraConfig(r=stage.lora_rank, lora_alpha=stage.lora_alpha, lora_dropout=stage.lora_dropout,
                        target_modules=list(stage.lora_targets), task_type="CAUSAL_LM")
    try:
        peft_model = get_peft_model(model, config)  # freezes every base parameter
    except ValueError as e:
        raise UserError(f"stage '{stage.name}': lora_targets {stage.lora_targets} do not match the model's modules ({e})") from None
    for p in _embedding_params(peft_model):
        p.requires_grad_(True)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    return StagePlan(peft_model, params, finish=lambda trained: trained.merge_and_unload())


def prepare_stage(model, stage: TrainStageConfig, new_token_ids: list[int] | None) -> StagePlan:
    """Set ``requires_grad`` for ``stage`` and return what the loop should optimise."""
    if stage.trainable == "all":
        for p in model.parameters():
            p.requires_grad_(True)
        return StagePlan(model, [p for p in model.parameters()])
    if stage.trainable == "lora":
        return _lora_stage(model, stage)
    for p in model.parameters():
        p.requires_grad_(False)
    params = _embedding_params(model)
    for p in params:
        p.requires_grad_(True)
    if stage.trainable == "embeddings":
        return StagePlan(model, params)

    if not new_token_ids:
        raise UserError(
            f"stage '{stage.name}' trains new_embeddings but the model has no new_tokens.json; "
            "run `polyglot-llama model extend` first or set new_tokens_file"
        )
    rows = params[0].shape[0]
    old_mask = torch.ones(rows, dtype=torch.bool)
    old_mask[torch.tensor(new_token_ids)] = False
    snapshots = [p.detach().cpu().clone() for p in params]  # [V, H] each, on the host: the rows to keep

    @torch.no_grad()
    def zero_old_row_grads(prepared) -> None:
        for p in _embedding_params(prepared):
            if p.grad is not None:
                grad, old = _local_rows(p.grad, old_mask)
                grad[old] = 0

    @torch.no_grad()
    def restore_old_rows(prepared) -> None:
        for p, snapshot in zip(_embedding_params(prepared), snapshots):
            local, old = _local_rows(p, old_mask)
            start = _row_offset(p)
            block = snapshot[start:start + local.shape[0]].to(local.device, local.dtype)
            local[old] = block[old]

    return StagePlan(model, params, after_optimizer_step=restore_old_rows, before_optimizer_step=zero_old_row_grads)
