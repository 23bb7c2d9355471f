"""The one runtime every model-running stage shares: device, dtypes, frozen-model placement and distributed state.

`Runtime` wraps an accelerate `Accelerator`, so a stage runs the same code in one process, under
``accelerate launch`` (DDP, FSDP2, DeepSpeed ZeRO-3: configs/accelerate/) or under ``torchrun`` (set
ACCELERATE_USE_CPU=true for gloo on CPUs). Trainable models go through ``prepare``; frozen models (the PPO
reference, reward models, a sampling-only policy) go through `Runtime.frozen`, which keeps them whole,
shards them over the ranks (FSDP2 ``fully_shard`` or a DeepSpeed ZeRO-3 inference engine, no optimizer) or
offloads them to CPU memory, always in `frozen_dtype`. The rank helpers (`shard`, `split`, `padded_share`,
`gather_rows`, `sum_floats`) let a stage split a global batch over ranks and rebuild it in order, so results
do not depend on the number of processes.

The precision rules of every stage live here too (`resolve_precision`, `autocast_for`, `weights_dtype`,
`pick_device`): the training loop, DPO, RLHF and evaluation read them from this module only.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager, nullcontext
from functools import partial
from typing import Any, Callable, Iterator, Literal

import torch
from torch import nn

log = logging.getLogger(__name__)

FrozenPlacement = Literal["auto", "whole", "shard", "offload"]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def bf16_supported() -> bool:
    """bf16 compute is worth it on a GPU that supports it; on CPUs bf16 autocast is 25-40× slower (AVX2)."""
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def use_cpu() -> bool:
    """Processes run on CPUs (gloo): ACCELERATE_USE_CPU=true, or no GPU visible."""
    from accelerate.utils import parse_flag_from_env

    return parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available()


def pick_device(name: str = "auto") -> torch.device:
    """The device a single-process stage runs on: 'auto' is the GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def frozen_dtype(device: torch.device) -> torch.dtype:
    """Frozen models (reference policy, RMs, generation-only models) run in bf16 on GPUs that support it,
    fp32 elsewhere."""
    if device.type == "cuda" and bf16_supported():
        return torch.bfloat16
    return torch.float32


def weights_dtype(name: str, device: torch.device) -> torch.dtype:
    """A config's weights dtype ('auto', 'float32', 'bfloat16', 'float16'); 'auto' is `frozen_dtype`."""
    return frozen_dtype(device) if name == "auto" else DTYPES[name]


def resolve_precision(mixed_precision: str) -> str:
    """accelerate's mixed_precision for a stage's setting: 'auto' is bf16 where supported, else 'no'."""
    if mixed_precision == "auto":
        return "bf16" if bf16_supported() else "no"
    return mixed_precision


def autocast_for(device: torch.device, mixed_precision: str) -> Callable[[], Any]:
    """A zero-argument context factory with the autocast accelerate applies for ``mixed_precision`` ('auto'
    resolved here), for passes outside a prepared model: fp32 weights, bf16/fp16 matmuls."""
    precision = resolve_precision(mixed_precision)
    if precision == "no":
        return nullcontext
    return partial(torch.autocast, device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def canonical_name(name: str) -> str:
    """A parameter's name without the wrappers' infixes (DDP's module., activation checkpointing, compile)."""
    for infix in ("_checkpoint_wrapped_module.", "_orig_mod.", "_fsdp_wrapped_module."):
        name = name.replace(infix, "")
    return name[len("module."):] if name.startswith("module.") else name


def is_fsdp2(model: nn.Module) -> bool:
    """Whether ``model`` (or a submodule) was sharded with torch's ``fully_shard``."""
    from torch.distributed.fsdp import FSDPModule

    return any(isinstance(m, FSDPModule) for m in model.modules())


def is_sharded(model: nn.Module) -> bool:
    """True when ``model``'s weights are split over ranks (FSDP2 or ZeRO-3), so every forward is collective."""
    if not torch.distributed.is_initialized() or torch.distributed.get_world_size() == 1:
        return False
    return is_fsdp2(model) or any(hasattr(p, "ds_id") for p in model.parameters())


def input_device(model: nn.Module) -> torch.device:
    """Where a model's inputs go: the execution device of a CPU-offloaded model (its weights wait on the
    meta device between forwards), else the device of its first parameter."""
    hook = getattr(model, "_hf_hook", None)
    if hook is not None and getattr(hook, "execution_device", None) is not None:
        return torch.device(hook.execution_device)
    for module in model.modules():
        hook = getattr(module, "_hf_hook", None)
        if getattr(hook, "execution_device", None) is not None:
            return torch.device(hook.execution_device)
    return next(model.parameters()).device


def _decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The blocks a model's ``_no_split_modules`` names (LlamaDecoderLayer, …): one FSDP unit each, as
    accelerate's TRANSFORMER_BASED_WRAP does for the trained models."""
    names = set(getattr(model, "_no_split_modules", None) or [])
    return [m for m in model.modules() if type(m).__name__ in names]


class Runtime:
    """Device, precision and ranks of this process (one per process; accelerate's state is a singleton)."""

    def __init__(self, mixed_precision: str = "auto"):
        from accelerate import Accelerator

        self.accelerator = Accelerator(cpu=use_cpu(), mixed_precision=resolve_precision(mixed_precision))
        self.device: torch.device = self.accelerator.device
        self.rank: int = self.accelerator.process_index
        self.world: int = self.accelerator.num_processes
        self.is_main: bool = self.accelerator.is_main_process
        self.frozen_dtype = frozen_dtype(self.device)
        self._engines: list = []  # ZeRO-3 inference engines of frozen models: they own the partitions and hooks

    def autocast(self):
        return self.accelerator.autocast() if self.accelerator.mixed_precision != "no" else nullcontext()

    def prepare(self, *objects):
        return self.accelerator.prepare(*objects)

    def unwrap(self, model):
        return self.accelerator.unwrap_model(model)

    def _zero3(self) -> bool:
        plugin = getattr(self.accelerator.state, "deepspeed_plugin", None)
        return plugin is not None and plugin.zero_stage == 3

    def sharded_training(self) -> bool:
        """Trainable models are sharded over several ranks (FSDP, DeepSpeed ZeRO-3)."""
        from accelerate.utils import DistributedType

        return self.world > 1 and (self.accelerator.distributed_type == DistributedType.FSDP or self._zero3())

    @contextmanager
    def loading_frozen(self):
        """Load frozen models whole: under ZeRO-3 with zero3_init_flag, transformers would otherwise partition
        their weights at load time for an engine they never join (TRL's zero3_init_context_manager)."""
        if self._zero3():
            with self.accelerator.state.deepspeed_plugin.zero3_init_context_manager(enable=False):
                yield
        else:
            yield

    def frozen(self, model: nn.Module, placement: FrozenPlacement = "auto") -> nn.Module:
        """``model`` (loaded whole on the CPU) in `frozen_dtype`, without gradients, ready for forwards here.

        whole: a full copy on this rank's device. shard: each rank holds 1/world of the weights, gathered one
        decoder layer at a time inside each forward (FSDP2 ``fully_shard`` per layer and at the root, or a
        ZeRO-3 inference engine under DeepSpeed; no optimizer either way), so every rank must run the same
        forwards. offload: the weights stay in CPU memory and each module's are copied to the device for its
        forward (accelerate's ``cpu_offload``): one GPU runs a model that does not fit it, at PCIe speed.
        auto: shard when the trained models are sharded (FSDP, ZeRO-3), else whole.
        """
        model.eval().requires_grad_(False)
        if placement == "auto":
            placement = "shard" if self.sharded_training() else "whole"
        if placement == "shard" and self.world == 1:
            log.info("frozen model: one process, nothing to shard; kept whole")
            placement = "whole"
        model.to(dtype=self.frozen_dtype)  # on the CPU: a 70B model is cast before any GPU sees it
        if placement == "offload":
            from accelerate import cpu_offload

            return cpu_offload(model, execution_device=self.device)
        if placement == "whole":
            return model.to(self.device)
        if self._zero3():
            return self._zero3_inference(model)
        from torch.distributed.fsdp import fully_shard

        # fully_shard moves one unit at a time to the device and keeps only this rank's rows of each weight:
        # the device never holds more than one full decoder layer of a frozen model.
        for layer in _decoder_layers(model):
            fully_shard(layer)
        fully_shard(model)
        # FSDP2 keeps the root unit (embeddings, LM head: the largest weights) gathered after a forward, for
        # the backward that a frozen model never runs; drop them again after every forward.
        model.register_forward_hook(lambda module, args, output: module.reshard())
        return model

    def _zero3_inference(self, model: nn.Module) -> nn.Module:
        """``model`` partitioned by a ZeRO-3 engine without an optimizer (TRL's prepare_deepspeed for its
        reference model); parameter offload follows the training config's offload_param."""
        import deepspeed

        trained = self.accelerator.state.deepspeed_plugin.deepspeed_config.get("zero_optimization", {})
        hidden = getattr(model.config, "hidden_size", 4096)
        zero = {"stage": 3, "stage3_param_persistence_threshold": 10 * hidden, "stage3_prefetch_bucket_size": 0}
        if trained.get("offload_param"):
            zero["offload_param"] = trained["offload_param"]
        config = {"train_micro_batch_size_per_gpu": 1, "zero_optimization": zero,
                  "bf16": {"enabled": self.frozen_dtype == torch.bfloat16}}
        engine, *_ = deepspeed.initialize(model=model, config=config)
        engine.eval()
        self._engines.append(engine)
        return engine.module

    @contextmanager
    def unwrapped_for_generation(self, model):
        """The bare module of a prepared model, with ZeRO-3's sharded parameters gathered while it generates
        (TRL's unwrap_model_for_generation). DDP keeps full weights per rank. Under FSDP2 the root unit
        (embeddings, final norm, LM head) is unsharded for the duration, since generation calls the policy
        submodule and never the root's forward that would gather it; the decoder layers gather themselves."""
        unwrapped = self.unwrap(model)
        if self._zero3():
            import deepspeed

            with deepspeed.zero.GatheredParameters(list(model.parameters())):
                yield unwrapped
            return
        from torch.distributed.fsdp import FSDPModule

        if isinstance(unwrapped, FSDPModule):
            unwrapped.unshard()
            try:
                yield unwrapped
            finally:
                unwrapped.reshard()
        else:
            yield unwrapped

    def full_parameters(self, model, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
        """(name without ``prefix``, full tensor) for each parameter of a prepared model whose name starts with
        ``prefix``, one at a time: FSDP2 shards are all-gathered, ZeRO-3 partitions gathered, so a consumer
        (a vLLM engine) never needs a second whole copy. Collective: every rank must run it to the end."""
        from torch.distributed.tensor import DTensor

        for name, param in self.unwrap(model).named_parameters():
            name = canonical_name(name)
            if not name.startswith(prefix):
                continue
            if hasattr(param, "ds_id"):
                import deepspeed

                with deepspeed.zero.GatheredParameters([param]):
                    full = param.data.detach().clone()
            elif isinstance(param, DTensor):
                full = param.full_tensor().detach()
            else:
                full = param.detach()
            yield name[len(prefix):], full

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

    def padded_share(self, rows: list) -> tuple[list, int]:
        """(this rank's `split` of ``rows`` padded to ⌈n / world⌉ by repeating a row, how many are real).
        Sharded models need every rank to run the same forwards; drop the padding's results before
        `gather_rows`."""
        mine = list(rows[self.split(len(rows))])
        if not rows:
            return [], 0
        per = -(-len(rows) // self.world)
        filler = mine[-1] if mine else rows[0]
        return mine + [filler] * (per - len(mine)), len(mine)

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
