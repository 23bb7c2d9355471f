"""Resumable training checkpoints: ``<run>/checkpoints/step_00000100/``.

Single-process and DDP runs write ``model.safetensors`` (full state), ``optimizer.pt`` (read back with
``torch.load(weights_only=True)``), ``rng.pt`` and ``state.json`` (step and metric history). A model sharded
with FSDP2 (``fully_shard``, as accelerate's FSDP plugin applies it) writes its model and AdamW states with
``torch.distributed.checkpoint`` into ``sharded/``: every rank writes only its own shards, nothing is gathered,
and a run resumes from them (tested on the same process count). DeepSpeed runs hand the model/optimizer part to
accelerate's ``save_state``/``load_state``. A checkpoint directory is written under a temporary name and
renamed when complete, so a run killed mid-save resumes from the previous one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import UserError
from ..model.checkpoint import tied_duplicate_keys
from ..runtime import is_fsdp2

PREFIX = "step_"


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def latest(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return None
    done = sorted(p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / "state.json").is_file())
    return done[-1] if done else None


def is_sharded(accelerator) -> bool:
    """Whether the model/optimizer states are restored after `accelerator.prepare` (it shards them)."""
    from accelerate.utils import DistributedType

    return accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)


def _save_sharded(directory: Path, model, optimizer) -> None:
    """Each rank's shards of the model and AdamW states (collective: every rank calls it)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_state, optim_state = get_state_dict(model, getattr(optimizer, "optimizer", optimizer))  # accelerate wraps it
    dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=str(directory))


def _load_sharded(directory: Path, model, optimizer) -> None:
    """Read the shards this rank holds into the sharded model and optimizer (collective).

    get_state_dict gives the sharded layout to read into; for an optimizer that has not stepped yet it first
    creates the AdamW states with a zero-lr step, so there is somewhere to load them.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    optimizer = getattr(optimizer, "optimizer", optimizer)  # accelerate's wrapper holds the torch optimizer
    model_state, optim_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optim": optim_state}
    dcp.load(state, checkpoint_id=str(directory))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])


def full_state_dict(model) -> dict | None:
    """A full, CPU state dict of an FSDP-wrapped model (collective); None for unsharded models."""
    if not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    is_fsdp = any(type(m).__name__.startswith(("FullyShardedDataParallel", "FSDP")) for m in model.modules())
    if not is_fsdp:
        return None
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def save(run_dir: Path, step: int, model, optimizer, history: list, accelerator, keep: int) -> Path:
    root = checkpoint_dir(run_dir)
    final = root / f"{PREFIX}{step:08d}"
    tmp = root / f".tmp_{PREFIX}{step:08d}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    if is_fsdp2(model):
        _save_sharded(tmp / "sharded", model, optimizer)
    elif is_sharded(accelerator):
        accelerator.save_state(str(tmp / "accelerate"))
    elif accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        # A tied head shares the embedding's storage, which safetensors refuses to write twice: it is left out
        # (load() re-ties it, as it tolerates a missing lm_head.weight). No copy of the weights is made: a CPU
        # tensor is written from its own memory (.cpu() and .contiguous() return it as it is).
        tied = set(tied_duplicate_keys(unwrapped))
        save_file({k: v.detach().cpu().contiguous() for k, v in unwrapped.state_dict().items() if k not in tied},
                  tmp / "model.safetensors")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    if accelerator.is_main_process:
        torch.save({"torch": torch.get_rng_state()}, tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step, "history": history}, default=float))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in sorted(p for p in root.iterdir() if p.name.startswith(PREFIX))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load(path: Path, model, optimizer, accelerator=None) -> dict:
    """Restore a checkpoint into an unprepared model/optimizer (``accelerator=None``) or, for sharded
    states, into the prepared ones; returns ``{"step", "history"}``."""
    state = json.loads((path / "state.json").read_text())
    if (path / "sharded").is_dir():
        if not is_fsdp2(model):
            raise UserError(f"{path}: a sharded (FSDP2) checkpoint; resume it under the FSDP launch config that wrote it")
        _load_sharded(path / "sharded", model, optimizer)
    elif accelerator is not None:
        accelerator.load_state(str(path / "accelerate"))
        return state
    if (path / "model.safetensors").is_file():
        tensors = load_file(path / "model.safetensors")
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        if unexpected or [k for k in missing if not k.endswith("lm_head.weight")]:
            raise RuntimeError(f"{path}: checkpoint does not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True))
    rng = torch.load(path / "rng.pt", weights_only=True)
    torch.set_rng_state(rng["torch"])
    return state
