"""The lean RMSNorm: the Hugging Face norms' outputs and gradients, one [N, H] tensor fewer saved."""

from __future__ import annotations

import pytest
import torch
from transformers.models.gemma2.modeling_gemma2 import Gemma2RMSNorm
from transformers.models.gemma3.modeling_gemma3 import Gemma3RMSNorm
from transformers.models.llama.modeling_llama import LlamaRMSNorm
from transformers.models.mistral.modeling_mistral import MistralRMSNorm
from transformers.models.qwen2.modeling_qwen2 import Qwen2RMSNorm
from transformers.models.qwen3.modeling_qwen3 import Qwen3RMSNorm

from polyglot_llama.train import rmsnorm
from polyglot_llama.train.rmsnorm import recompute_norm_outputs, use_lean_rmsnorm

HIDDEN = 16
NORMS = [LlamaRMSNorm, MistralRMSNorm, Qwen2RMSNorm, Qwen3RMSNorm, Gemma2RMSNorm, Gemma3RMSNorm]


def _norm(cls, dtype=torch.float64):
    norm = cls(HIDDEN, eps=1e-5)
    with torch.no_grad():  # away from the initial ones (Llama) / zeros (Gemma), so the weight matters
        norm.weight.copy_(torch.linspace(-1.5, 2.0, HIDDEN))
    return norm.to(dtype)


class _Wrapper(torch.nn.Module):
    def __init__(self, norm):
        super().__init__()
        self.norm = norm


def _lean(cls, dtype=torch.float64):
    wrapper = _Wrapper(_norm(cls, dtype))
    assert use_lean_rmsnorm(wrapper) == 1
    return wrapper.norm


def _run(norm, x):
    x = x.clone().requires_grad_(True)
    y = norm(x)
    (y.float() * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
    return y.detach(), x.grad, norm.weight.grad


def _max_rel(a, b) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


@pytest.mark.parametrize("cls", NORMS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_lean_rmsnorm_gives_the_same_output_and_gradients(cls, dtype):
    # The Hugging Face norms compute in fp32 whatever the input (fp64 too), so fp32 is the exact reference.
    # [B, T, heads, head_dim] as Qwen3's q_norm sees it: the weight's gradient sums over every leading dim.
    x = (torch.randn(2, 3, 4, HIDDEN, generator=torch.Generator().manual_seed(1)) * 3 + 0.5).to(dtype)
    y0, gx0, gw0 = _run(_norm(cls, dtype), x)
    y1, gx1, gw1 = _run(_lean(cls, dtype), x)
    assert y1.dtype == y0.dtype and torch.equal(y0, y1)  # the same ops in the same order
    # The input's gradient is one fused formula instead of autograd's chain: fp32 rounding apart (measured
    # 6e-8 of the largest entry in fp32; equal in bf16).
    tol = 1e-6 if dtype == torch.float32 else 1e-2
    assert _max_rel(gx1, gx0) < tol
    assert _max_rel(gw1, gw0) < tol


def test_lean_rmsnorm_leaves_other_modules_alone():
    model = torch.nn.Sequential(torch.nn.LayerNorm(HIDDEN), _norm(LlamaRMSNorm), torch.nn.RMSNorm(HIDDEN))
    assert use_lean_rmsnorm(model) == 1
    assert "forward" not in vars(model[0]) and "forward" not in vars(model[2])


def _saved_bytes(module, x) -> int:
    """Bytes of the distinct storages autograd keeps for the backward of one forward, parameters excluded."""
    params = {p.untyped_storage().data_ptr() for p in module.parameters()}
    storages = {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in params:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x.requires_grad_(True))
    return sum(storages.values())


@pytest.mark.parametrize("cls", [LlamaRMSNorm, Gemma3RMSNorm], ids=lambda c: c.__name__)
def test_lean_rmsnorm_saves_only_its_input_and_the_inverse_rms(cls):
    n = 10
    x = torch.randn(n, HIDDEN)
    # x [n, H] and 1/rms [n, 1], fp32
    assert _saved_bytes(_lean(cls, torch.float32), x) == n * HIDDEN * 4 + n * 4
    # the plain norm also keeps the normalised x (Llama: after the cast; Gemma: before the (1 + w) product)
    assert _saved_bytes(_norm(cls, torch.float32), x) >= 2 * n * HIDDEN * 4


def _tiny_model(kind: str):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

    common = dict(vocab_size=64, hidden_size=HIDDEN, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=1)
    torch.manual_seed(0)
    if kind == "llama":
        return LlamaForCausalLM(LlamaConfig(**common))
    if kind == "qwen3":  # q_norm / k_norm on [B, T, heads, head_dim]
        return Qwen3ForCausalLM(Qwen3Config(**common, head_dim=8))
    return Gemma3ForCausalLM(Gemma3TextConfig(**common, head_dim=8, query_pre_attn_scalar=8, sliding_window=4))


def _train_step(model, ids, recompute: bool):
    """(loss, gradients by name, bytes of the distinct non-parameter storages kept for the backward)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept = {}

    def count(t):
        if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in params:
            kept[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    if recompute:  # count what the recompute hook keeps (a recipe keeps nothing of its own)
        real_pack = rmsnorm._pack
        rmsnorm._pack = lambda t: count(real_pack(t))
        try:
            with recompute_norm_outputs():
                loss = model(input_ids=ids, labels=ids).loss
        finally:
            rmsnorm._pack = real_pack
    else:
        with torch.autograd.graph.saved_tensors_hooks(count, lambda t: t):
            loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    return loss.detach(), grads, sum(kept.values())


@pytest.mark.parametrize("kind", ["llama", "qwen3", "gemma3"])
def test_norm_outputs_remade_in_the_backward_give_the_same_gradients_and_are_not_kept(kind):
    model = _tiny_model(kind)
    ids = torch.randint(0, 64, (2, 6), generator=torch.Generator().manual_seed(3))
    plain_loss, plain_grads, _ = _train_step(model, ids, recompute=False)
    norms = use_lean_rmsnorm(model)
    assert norms == {"llama": 5, "qwen3": 9, "gemma3": 13}[kind]  # per layer 2 / 4 (+ q/k norms), + the final
    lean_loss, lean_grads, lean_kept = _train_step(model, ids, recompute=False)
    loss, grads, kept = _train_step(model, ids, recompute=True)
    assert torch.equal(loss, lean_loss) and torch.equal(loss, plain_loss)
    for name, grad in grads.items():
        assert torch.equal(grad, lean_grads[name]), name  # remade to the same bits
        assert _max_rel(grad, plain_grads[name]) < 1e-6, name
    # Per layer the attention's and the MLP's input norm outputs, plus the final norm's (read by lm_head):
    # 5 [N, H] fp32 tensors fewer, N = 12 tokens.
    assert lean_kept - kept == 5 * 12 * HIDDEN * 4


def test_a_freed_norm_output_leaves_the_table():
    norm = _lean(LlamaRMSNorm, torch.float32)
    x = torch.randn(3, HIDDEN, requires_grad=True)
    with recompute_norm_outputs():
        y = norm(x)
        assert len(rmsnorm._outputs) == 1
        del y  # its address may now be reused by any tensor, which must not be mistaken for it
        assert rmsnorm._outputs == {}
    assert rmsnorm._outputs is None


def test_an_output_read_by_three_linears_is_remade_once(monkeypatch):
    norm = _lean(LlamaRMSNorm, torch.float32)
    linears = [torch.nn.Linear(HIDDEN, 4) for _ in range(3)]  # as q, k and v read the input norm's output
    x = torch.randn(2, 5, HIDDEN, requires_grad=True)
    with recompute_norm_outputs():
        y = norm(x)
        loss = sum((lin(y) * (i + 1)).sum() for i, lin in enumerate(linears))
    remakes = []
    real_norm = rmsnorm._norm
    monkeypatch.setattr(rmsnorm, "_norm", lambda *a: remakes.append(1) or real_norm(*a))
    loss.backward()
    assert len(remakes) == 1
    # each weight's gradient is Σ_rows (i + 1) · y: the remade y is the forward's
    for i, lin in enumerate(linears):
        expected = (i + 1) * y.detach().reshape(-1, HIDDEN).sum(0).expand(4, HIDDEN)
        assert torch.allclose(lin.weight.grad, expected, rtol=1e-6, atol=1e-6)
