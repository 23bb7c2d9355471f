"""Freezing schedules for continued pretraining: which parameters a stage trains.

``new_embeddings`` trains only the embedding and LM-head rows of tokens added by `model extend`
(Chinese-LLaMA stage 1, EEVE's first stages): everything else is frozen, gradients of old rows are zeroed
by a hook, and after each optimizer step the old rows are copied back from a snapshot, because AdamW's
decoupled weight decay would otherwise still shrink them. The old rows therefore stay bit-identical.
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
    trainable: Literal["all", "new_embeddings", "embeddings"] = "all"
    """all: every parameter; embeddings: input embeddings + LM head only; new_embeddings: only the rows of new tokens."""
    steps: int = 0
    """Optimizer steps of this stage (0: loop.max_steps, or loop.epochs over the data)."""
    lr: float = 0.0
    """Peak learning rate of this stage (0: optim.lr)."""


@dataclass
class StagePlan:
    model: torch.nn.Module
    params: list[torch.nn.Parameter]
    after_optimizer_step: Callable[[torch.nn.Module], None] | None = None
    finish: Callable[[torch.nn.Module], torch.nn.Module] = field(default=lambda model: model)


def _embedding_params(model) -> list[torch.nn.Parameter]:
    params = [model.get_input_embeddings().weight]
    head = model.get_output_embeddings()
    if head is not None and head.weight is not params[0]:  # tied weights appear once
        params.append(head.weight)
    return params


def prepare_stage(model, stage: TrainStageConfig, new_token_ids: list[int] | None) -> StagePlan:
    """Set ``requires_grad`` for ``stage`` and return what the loop should optimise."""
    if stage.trainable == "all":
        for p in model.parameters():
            p.requires_grad_(True)
        return StagePlan(model, [p for p in model.parameters()])
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
    new_mask = torch.zeros(rows, dtype=torch.bool)
    new_mask[torch.tensor(new_token_ids)] = True
    old_mask = ~new_mask
    snapshots = [p.detach()[old_mask.to(p.device)].clone() for p in params]
    handles = []
    for p in params:
        keep = new_mask.to(p.device, p.dtype).unsqueeze(1)  # [V, 1]: 1 for new rows
        handles.append(p.register_hook(lambda grad, keep=keep: grad * keep))

    @torch.no_grad()
    def restore_old_rows(unwrapped) -> None:
        for p, snapshot in zip(_embedding_params(unwrapped), snapshots):
            p[old_mask.to(p.device)] = snapshot

    def remove_hooks(trained):
        for handle in handles:
            handle.remove()
        return trained

    return StagePlan(model, params, after_optimizer_step=restore_old_rows, finish=remove_hooks)
