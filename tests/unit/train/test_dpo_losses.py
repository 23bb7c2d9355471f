"""DPO, cDPO (label smoothing), ODPO (offset) and IPO losses and answer log-probs against hand-computed values."""

import math

import pytest
import torch

from polyglot_llama.train.losses import dpo_loss, ipo_loss, sequence_logprobs


def softplus(x: float) -> float:
    """−log σ(−x) = log(1 + eˣ), written out by hand."""
    return math.log(1.0 + math.exp(x))


# Two pairs: log-ratio gaps h = [(−2 + 2.5) − (−3 + 2.5), (−4 + 3) − (−1 + 1)] = [1, −1].
POLICY_CHOSEN, POLICY_REJECTED = torch.tensor([-2.0, -4.0]), torch.tensor([-3.0, -1.0])
REF_CHOSEN, REF_REJECTED = torch.tensor([-2.5, -3.0]), torch.tensor([-2.5, -1.0])


def test_sigmoid_dpo_hand_computed():
    # β = 0.1 → z = [0.1, −0.1]; −log σ(z) = log(1 + e^−z) = [0.6443967, 0.7443967]
    value = dpo_loss(POLICY_CHOSEN, POLICY_REJECTED, REF_CHOSEN, REF_REJECTED, beta=0.1)
    assert float(value) == pytest.approx((0.64439666 + 0.74439666) / 2, abs=1e-6)
    # β = 1 → z = [1, −1]: log(1 + e^−1) = 0.3132617, log(1 + e) = 1.3132617
    value = dpo_loss(POLICY_CHOSEN, POLICY_REJECTED, REF_CHOSEN, REF_REJECTED, beta=1.0)
    assert float(value) == pytest.approx((0.31326169 + 1.31326169) / 2, abs=1e-6)


def test_label_smoothing_hand_computed():
    # ε = 0.2 on the first pair alone (β = 1, z = 1): 0.8·log(1 + e^−1) + 0.2·log(1 + e)
    value = dpo_loss(POLICY_CHOSEN[:1], POLICY_REJECTED[:1], REF_CHOSEN[:1], REF_REJECTED[:1], beta=1.0, label_smoothing=0.2)
    assert float(value) == pytest.approx(0.8 * 0.31326169 + 0.2 * 1.31326169, abs=1e-6)


def test_offset_hand_computed():
    # β = 0.1, Δ = [0.1, 1.0] → z = [0, −1.1]: log 2 and log(1 + e^1.1)
    value = dpo_loss(POLICY_CHOSEN, POLICY_REJECTED, REF_CHOSEN, REF_REJECTED, beta=0.1, offsets=torch.tensor([0.1, 1.0]))
    assert float(value) == pytest.approx((math.log(2) + softplus(1.1)) / 2, abs=1e-6)
    # A zero offset is plain DPO; a larger offset for the same pair is a larger loss.
    plain = dpo_loss(POLICY_CHOSEN, POLICY_REJECTED, REF_CHOSEN, REF_REJECTED, beta=0.1)
    assert float(dpo_loss(POLICY_CHOSEN, POLICY_REJECTED, REF_CHOSEN, REF_REJECTED, beta=0.1, offsets=torch.zeros(2))) == pytest.approx(float(plain))


def test_ipo_hand_computed():
    # Per-token log-ratios: pair 1 chosen 0.5/2 = 0.25, rejected −0.5/4 = −0.125 → h = 0.375;
    # pair 2 chosen −1/1, rejected 0/2 → h = −1. τ = 0.5 → target 1/(2τ) = 1: (0.375 − 1)² = 0.390625, (−2)² = 4.
    value = ipo_loss(POLICY_CHOSEN, POLICY_REJECTED, REF_CHOSEN, REF_REJECTED, torch.tensor([2, 1]), torch.tensor([4, 2]), tau=0.5)
    assert float(value) == pytest.approx((0.390625 + 4.0) / 2, abs=1e-6)


def test_sequence_logprobs_hand_computed():
    # Every position has probabilities [1/4, 3/4] over a 2-token vocabulary.
    logits = torch.tensor([0.0, math.log(3.0)]).repeat(2, 3, 1).requires_grad_()
    labels = torch.tensor([[-100, 1, 0], [-100, -100, -100]])
    sums, counts = sequence_logprobs(logits, labels)
    # Row 0: position 0 predicts id 1 (3/4), position 1 predicts id 0 (1/4); row 1 scores nothing.
    assert sums.tolist() == pytest.approx([math.log(3 / 16), 0.0], abs=1e-6) and counts.tolist() == [2, 0]
    sums.sum().backward()
    assert logits.grad[0, 0].tolist() == pytest.approx([-0.25, 0.25], abs=1e-6)  # ∂ log p(1)/∂ logits = onehot − p
    assert logits.grad[0, 2].abs().sum() == 0 and logits.grad[1].abs().sum() == 0
