"""Chunked (linear) cross-entropy: the same loss and gradients as full logits, on a real tiny Llama too."""

import torch
import torch.nn.functional as F

from polyglot_llama.train.data import causal_lm_step
from polyglot_llama.train.losses import IGNORE_INDEX, causal_lm_loss, linear_cross_entropy


def test_linear_cross_entropy_matches_full_logits_in_float64():
    torch.manual_seed(0)
    hidden = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(11, 5, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([3, IGNORE_INDEX, 0, 10, 10, IGNORE_INDEX, 4])
    # Reference: the textbook formula on the full [7, 11] logits.
    ref = F.cross_entropy(hidden @ weight.T, targets, ignore_index=IGNORE_INDEX, reduction="sum")
    ref_h, ref_w = torch.autograd.grad(3.0 * ref, (hidden, weight))
    got = linear_cross_entropy(hidden, weight, targets, chunk_size=3)  # chunks of 3, 3, 1 rows
    got_h, got_w = torch.autograd.grad(3.0 * got, (hidden, weight))  # the outer factor reaches both
    assert torch.allclose(got.double(), ref, atol=1e-5)
    assert torch.allclose(got_h, ref_h, atol=1e-5) and torch.allclose(got_w, ref_w, atol=1e-5)
    assert got_h[1].abs().sum() == 0 and got_h[5].abs().sum() == 0  # ignored rows get no gradient


def test_model_step_equals_full_logits_loss_and_gradients(en_model_dir):
    from polyglot_llama.model.checkpoint import load_causal_lm

    model = load_causal_lm(en_model_dir)  # tied embeddings: both paths reach the one matrix
    torch.manual_seed(1)
    ids = torch.randint(3, 500, (2, 24))
    labels = ids.clone()
    labels[0, :5] = IGNORE_INDEX
    positions = torch.arange(24).repeat(2, 1)
    batch = {"input_ids": ids, "labels": labels, "position_ids": positions}

    shapes = []
    hook = model.lm_head.register_forward_hook(lambda module, args, output: shapes.append(tuple(output.shape)))
    out = causal_lm_step(model, batch)
    hook.remove()
    assert shapes == [(2, 0, 512)]  # the model itself made no logits: no [B, T, V] tensor
    out.loss.backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    logits = model(input_ids=ids, position_ids=positions).logits
    ref, n_ref = causal_lm_loss(logits, labels)
    ref.backward()
    assert out.n_tokens == n_ref == 2 * 23 - 4  # row 0 loses targets 1..4
    assert abs(float(out.loss) - float(ref)) < 1e-5
    for name, p in model.named_parameters():
        assert torch.allclose(got[name], p.grad, atol=1e-6, rtol=1e-4), name


def test_linear_cross_entropy_prepares_no_gradients_under_no_grad(monkeypatch):
    """Validation runs trainable weights under torch.no_grad(): the loss alone, no softmax gradient blocks
    (on SmolLM2 a 49,460 x 576 fp32 buffer and a [c, V] softmax per batch)."""
    torch.manual_seed(0)
    hidden = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(11, 5, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([3, IGNORE_INDEX, 0, 10, 10, IGNORE_INDEX, 4])
    softmax_blocks = []
    exp_ = torch.Tensor.exp_
    monkeypatch.setattr(torch.Tensor, "exp_", lambda self: softmax_blocks.append(tuple(self.shape)) or exp_(self))
    with torch.no_grad():
        got = linear_cross_entropy(hidden, weight, targets, chunk_size=3)
    assert softmax_blocks == []
    ref = F.cross_entropy(hidden @ weight.T, targets, ignore_index=IGNORE_INDEX, reduction="sum")
    assert abs(float(got) - float(ref)) < 1e-5  # summed in fp32
    linear_cross_entropy(hidden, weight, targets, chunk_size=3)  # with gradients: one softmax per chunk
    assert softmax_blocks == [(3, 11), (3, 11), (1, 11)]


def test_linear_cross_entropy_takes_the_log_sum_exp_from_the_softmax_when_training(monkeypatch):
    """torch.logsumexp allocates its own [c, V] block of exponentials, beside the logits, at the step's peak
    of memory; with gradients the loss reuses the softmax's sums instead (one [c, V] block per chunk)."""
    torch.manual_seed(0)
    hidden = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(11, 5, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([3, IGNORE_INDEX, 0, 10, 10, IGNORE_INDEX, 4])
    calls = []
    logsumexp = torch.logsumexp
    monkeypatch.setattr(torch, "logsumexp", lambda *a, **k: calls.append(a[0].shape) or logsumexp(*a, **k))
    got = linear_cross_entropy(hidden, weight, targets, chunk_size=3)
    assert calls == []
    ref = F.cross_entropy(hidden @ weight.T, targets, ignore_index=IGNORE_INDEX, reduction="sum")
    assert abs(float(got) - float(ref)) < 1e-5
    with torch.no_grad():  # validation: no softmax, so logsumexp is the one pass
        linear_cross_entropy(hidden, weight, targets, chunk_size=3)
    assert len(calls) == 3
