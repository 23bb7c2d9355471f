"""An RMSNorm that keeps only its input and 1/rms for the backward.

Autograd keeps three tensors of an RMSNorm's [N, H] size (on fp32 input: x, the normalised x·r and, for the
weight's gradient, the same again after the cast; Gemma keeps x·r and its fp32 copy): `_RMSNorm` saves x
and r = 1/rms [N, 1] and recomputes x·r in the backward, one [N, H] tensor fewer per norm (on the SmolLM2-135M
shape at 2 × 512 tokens, 2.25 MiB per norm, 135 MiB over its 60 norms) for one elementwise pass.

Two layouts, verified against the Hugging Face classes they replace (same forward to the last bit, gradients
within fp32 rounding; tested):
- "scale" (Llama, Mistral, Qwen2, Qwen3): y = w · (x·r).to(x.dtype)
- "offset" (Gemma 2/3, weights stored around 0): y = ((x·r) · (1 + w)).to(x.dtype), all in fp32
with x·r = x.float() · rsqrt(mean(x.float()²) + eps) over the last dimension.
`use_lean_rmsnorm` switches a model's norms of those classes in place.

The linears that read a norm's output y (q/k/v after the input norm, gate/up after the post-attention norm)
each keep y for their weight gradients. Inside `recompute_norm_outputs()` they keep a recipe instead (the
norm's input x, which the norm keeps anyway, its weight and eps) and y is recomputed in the backward by the
same code, so to the same bits: one more [N, H] tensor fewer per norm for one elementwise pass.
"""

from __future__ import annotations

import types
import weakref
from contextlib import contextmanager
from dataclasses import dataclass

import torch

SCALE_NORMS = ("LlamaRMSNorm", "MistralRMSNorm", "Qwen2RMSNorm", "Qwen3RMSNorm")
OFFSET_NORMS = ("Gemma2RMSNorm", "Gemma3RMSNorm")


def _norm(x: torch.Tensor, weight: torch.Tensor, eps: float, offset: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(y [..., H], r = 1/rms [..., 1] fp32), with the Hugging Face classes' ops in their order."""
    xf = x.float()
    r = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    normed = xf * r
    if offset:
        return (normed * (1.0 + weight.float())).to(x.dtype), r
    return weight * normed.to(x.dtype), r


class _RMSNorm(torch.autograd.Function):
    """x [..., H], weight [H] → y [..., H]; ``offset`` picks the Gemma layout (see the module docstring)."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")
    def forward(ctx, x, weight, eps: float, offset: bool):
        y, r = _norm(x, weight, eps, offset)
        ctx.save_for_backward(x, r, weight)
        ctx.offset = offset
        return y

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, grad_y):
        x, r, weight = ctx.saved_tensors
        normed = x.float() * r
        reduce_dims = tuple(range(grad_y.dim() - 1))
        if ctx.offset:
            grad_y32 = grad_y.float()
            grad_weight = (grad_y32 * normed).sum(reduce_dims).to(weight.dtype) if ctx.needs_input_grad[1] else None
            grad_normed = grad_y32 * (1.0 + weight.float())
        else:
            # As autograd does for w · n: the weight's gradient in y's dtype, the cast's gradient back to fp32.
            grad_weight = None
            if ctx.needs_input_grad[1]:
                grad_weight = (grad_y * normed.to(x.dtype)).sum(reduce_dims).to(weight.dtype)
            grad_normed = (grad_y * weight).to(x.dtype).float()
        grad_x = None
        if ctx.needs_input_grad[0]:
            # d(x·r)/dx with r = (mean(x²) + eps)^-½:  r · (g − n · mean(g · n)) for n = x·r
            grad_x = (r * (grad_normed - normed * (grad_normed * normed).mean(-1, keepdim=True))).to(x.dtype)
        return grad_x, grad_weight, None, None


class _Remade:
    """One norm output remade once for all the ops that saved it (q, k and v read the same one): the first
    unpack computes it, the last one lets it go."""

    def __init__(self, x: torch.Tensor, weight: torch.Tensor, eps: float, offset: bool):
        self.inputs, self.saves, self.y = (x, weight, eps, offset), 0, None

    def take(self) -> torch.Tensor:
        if self.y is None:
            with torch.no_grad():
                self.y, _ = _norm(*self.inputs)
        y, self.saves = self.y, self.saves - 1
        if self.saves == 0:
            self.y = None
        return y


@dataclass
class _Recipe:
    """How to remake a saved view of a norm's output: the shared remade output and the view's geometry."""
    remade: _Remade
    size: torch.Size
    stride: tuple[int, ...]
    storage_offset: int

    def remake(self) -> torch.Tensor:
        return self.remade.take().as_strided(self.size, self.stride, self.storage_offset)


_outputs: dict[int, tuple] | None = None
"""While `recompute_norm_outputs` is active: storage address of each live norm output → (weak reference to
it, its `_Remade`). An entry leaves when its output is freed, before the address can be reused."""


def _lean_norm(x, weight, eps: float, offset: bool):
    y = _RMSNorm.apply(x, weight, eps, offset)
    if _outputs is not None and y.requires_grad:
        key = y.untyped_storage().data_ptr()
        _outputs[key] = (weakref.ref(y, lambda _, table=_outputs, k=key: table.pop(k, None)), _Remade(x, weight, eps, offset))
    return y


def _pack(t: torch.Tensor):
    entry = _outputs.get(t.untyped_storage().data_ptr()) if _outputs is not None else None
    y = entry[0]() if entry is not None else None
    if y is None or t.dtype != y.dtype or t.untyped_storage().nbytes() != y.untyped_storage().nbytes():
        return t
    entry[1].saves += 1
    return _Recipe(entry[1], t.size(), t.stride(), t.storage_offset())


def _unpack(saved):
    return saved.remake() if isinstance(saved, _Recipe) else saved


@contextmanager
def recompute_norm_outputs():
    """Within it, a lean norm's output saved for the backward by the ops that read it is remade there."""
    global _outputs
    previous, _outputs = _outputs, {}
    try:
        with torch.autograd.graph.saved_tensors_hooks(_pack, _unpack):
            yield
    finally:
        _outputs = previous


def _scale_forward(self, hidden_states):
    return _lean_norm(hidden_states, self.weight, self.variance_epsilon, False)


def _offset_forward(self, x):
    return _lean_norm(x, self.weight, self.eps, True)


def use_lean_rmsnorm(model) -> int:
    """Give every RMSNorm of a class listed above the lean forward; returns how many were switched."""
    switched = 0
    for module in model.modules():
        name = type(module).__name__
        if name in SCALE_NORMS:
            module.forward = types.MethodType(_scale_forward, module)
        elif name in OFFSET_NORMS:
            module.forward = types.MethodType(_offset_forward, module)
        else:
            continue
        switched += 1
    return switched
