"""The one runtime every model-running stage shares: device, dtypes and distributed state.

`Runtime` wraps an accelerate `Accelerator`, so a stage runs the same code in one process, under
``accelerate launch`` (DDP, FSDP2, DeepSpeed ZeRO-3: configs/accelerate/) or under ``torchrun`` (set
ACCELERATE_USE_CPU=true for gloo on CPUs). Trainable models go through ``prepare``; frozen models (the PPO
reference, reward models) stay unwrapped in `frozen_dtype` on every rank. The rank helpers
(`shard`, `gather_rows`, `sum_floats`) let a stage split a global batch over ranks and rebuild it in
order, so results do not depend on the number of processes.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Any

import torch


def bf16_supported() -> bool:
    """bf16 compute is worth it on a GPU that supports it; on CPUs bf16 autocast is 25-40× slower (AVX2)."""
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def pick_device() -> torch.device:
    """The device a single-process stage runs on."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def frozen_dtype(device: torch.device) -> torch.dtype:
    """Frozen models (reference policy, RMs, generation-only models) run in bf16 on GPUs that support it,
    fp32 elsewhere."""
    if device.type == "cuda" and bf16_supported():
        return torch.bfloat16
    return torch.float32


def resolve_precision(mixed_precision: str) -> str:
    """accelerate's mixed_precision for a stage's setting: 'auto' is bf16 where supported, else 'no'."""
    if mixed_precision == "auto":
        return "bf16" if bf16_supported() else "no"
    return mixed_precision


class Runtime:
    """Device, precision and ranks of this process (one per process; accelerate's state is a singleton)."""

    def __init__(self, mixed_precision: str = "auto"):
        from accelerate import Accelerator
        from accelerate.utils import parse_flag_from_env

        cpu = parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available()
        self.accelerator = Accelerator(cpu=cpu, mixed_precision=resolve_precision(mixed_precision))
        self.device: torch.device = self.accelerator.device
        self.rank: int = self.accelerator.process_index
        self.world: int = self.accelerator.num_processes
        self.is_main: bool = self.accelerator.is_main_process
        self.frozen_dtype = frozen_dtype(self.device)

    def autocast(self):
        return self.accelerator.autocast() if self.accelerator.mixed_precision != "no" else nullcontext()

    def prepare(self, *objects):
        return self.accelerator.prepare(*objects)

    def unwrap(self, model):
        return self.accelerator.unwrap_model(model)

    def _zero3(self) -> bool:
        plugin = getattr(self.accelerator.state, "deepspeed_plugin", None)
        return plugin is not None and plugin.zero_stage == 3

    @contextmanager
    def loading_frozen(self):
        """Load frozen models whole: under ZeRO-3 with zero3_init_flag, transformers would otherwise partition
        their weights at load time for an engine they never join (TRL's zero3_init_context_manager)."""
        if self._zero3():
            with self.accelerator.state.deepspeed_plugin.zero3_init_context_manager(enable=False):
                yield
        else:
            yield

    @contextmanager
    def unwrapped_for_generation(self, model):
        """The bare module of a prepared model, with ZeRO-3's sharded parameters gathered while it generates
        (TRL's unwrap_model_for_generation). DDP keeps full weights per rank; FSDP2's per-module hooks gather
        shards on each forward, so its unwrapped module generates as it is."""
        unwrapped = self.unwrap(model)
        if self._zero3():
            import deepspeed

            with deepspeed.zero.GatheredParameters(list(model.parameters())):
                yield unwrapped
        else:
            yield unwrapped

    def shard(self, n: int, what: str) -> slice:
        """This rank's contiguous share of ``n`` global rows (rank r gets rows r·n/world … (r+1)·n/world)."""
        if n % self.world:
            from .errors import UserError

            raise UserError(f"key '{what}' is {n}; with {self.world} processes it must be a multiple of {self.world}")
        per = n // self.world
        return slice(self.rank * per, (self.rank + 1) * per)

    def split(self, n: int) -> slice:
        """This rank's contiguous share of ``n`` rows when ``n`` need not divide evenly (sizes differ by ≤ 1)."""
        return slice(self.rank * n // self.world, (self.rank + 1) * n // self.world)

    def gather_rows(self, rows: list[Any]) -> list[Any]:
        """Every rank's ``rows`` concatenated in rank order, on every rank (the inverse of `shard`)."""
        if self.world == 1:
            return list(rows)
        from accelerate.utils import gather_object

        return gather_object(list(rows))

    def sum_floats(self, values: dict[str, float]) -> dict[str, float]:
        """Per-key sums over ranks (same keys on every rank)."""
        if self.world == 1:
            return dict(values)
        keys = sorted(values)
        total = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=self.device)
        total = self.accelerator.reduce(total, reduction="sum")
        return {k: float(v) for k, v in zip(keys, total.tolist())}

    def wait(self) -> None:
        self.accelerator.wait_for_everyone()
