"""The lean SwiGLU MLP: same outputs and gradients as the model's own, two fewer [N, F] tensors saved."""

from __future__ import annotations

import torch
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaMLP

from polyglot_llama.train.swiglu import use_lean_mlp

HIDDEN, FFN, N = 8, 24, 10


def _mlp(dtype=torch.float64) -> LlamaMLP:
    torch.manual_seed(0)
    return LlamaMLP(LlamaConfig(hidden_size=HIDDEN, intermediate_size=FFN, num_attention_heads=2, num_key_value_heads=2, hidden_act="silu")).to(dtype)


def _run(mlp, x):
    x = x.clone().requires_grad_(True)
    y = mlp(x)
    (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)).sum().backward()
    grads = {name: p.grad.clone() for name, p in mlp.named_parameters()}
    return y.detach(), x.grad, grads


def test_lean_mlp_gives_the_same_output_and_gradients():
    x = torch.randn(2, N // 2, HIDDEN, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 3
    plain, lean = _mlp(), _mlp()
    assert use_lean_mlp(lean) == 1
    y0, gx0, g0 = _run(plain, x)
    y1, gx1, g1 = _run(lean, x)
    assert torch.allclose(y0, y1, atol=1e-12)
    assert torch.allclose(gx0, gx1, atol=1e-12)
    for name in ("gate_proj.weight", "up_proj.weight", "down_proj.weight"):
        assert torch.allclose(g0[name], g1[name], atol=1e-12), name


def _saved_bytes(mlp, x) -> int:
    """Bytes of the distinct storages autograd keeps for the backward of one forward."""
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        mlp(x.requires_grad_(True))
    return sum(storages.values())


def test_lean_mlp_saves_two_fewer_intermediate_tensors():
    x = torch.randn(N, HIDDEN)
    plain, lean = _mlp(torch.float32), _mlp(torch.float32)
    use_lean_mlp(lean)
    # silu(gate) and silu(gate)·up, [N, FFN] fp32 each, are recomputed instead of kept.
    assert _saved_bytes(plain, x) - _saved_bytes(lean, x) == 2 * N * FFN * 4
