"""Llama 2's combined reward: safety RM for safety prompts or likely-unsafe answers, else helpfulness RM."""

import math

import pytest
import torch

from polyglot_llama.rlhf.combined_reward import combined_reward, logit, shaped_reward, whiten


def probs(*values):
    return torch.tensor(values, dtype=torch.float64)


def test_threshold_boundary():
    r_help = probs(0.9, 0.9, 0.9)
    r_safe = probs(0.15, 0.1499, 0.1501)
    not_safety = torch.tensor([False, False, False])
    # R_s < 0.15 is strict: exactly 0.15 keeps the helpfulness reward.
    assert combined_reward(r_help, r_safe, not_safety).tolist() == pytest.approx([0.9, 0.1499, 0.9])


def test_safety_tagged_prompts_use_the_safety_reward():
    r_help = probs(0.9, 0.2, 0.7)
    r_safe = probs(0.8, 0.95, 0.05)
    tagged = torch.tensor([True, True, False])
    assert combined_reward(r_help, r_safe, tagged).tolist() == pytest.approx([0.8, 0.95, 0.05])
    assert combined_reward(r_help, r_safe, torch.tensor([False, False, False])).tolist() == pytest.approx([0.9, 0.2, 0.05])


def test_threshold_is_configurable():
    r_help, r_safe, tag = probs(0.9), probs(0.3), torch.tensor([False])
    assert combined_reward(r_help, r_safe, tag).tolist() == pytest.approx([0.9])
    assert combined_reward(r_help, r_safe, tag, threshold=0.5).tolist() == pytest.approx([0.3])


def test_shapes_must_match():
    with pytest.raises(ValueError, match="shapes differ"):
        combined_reward(probs(0.5, 0.5), probs(0.5), torch.tensor([False]))


def test_logit_inverts_sigmoid_and_stays_finite():
    x = torch.tensor([-3.0, 0.0, 2.5])
    assert logit(torch.sigmoid(x)).tolist() == pytest.approx(x.tolist(), abs=1e-5)
    assert logit(probs(0.75)).item() == pytest.approx(math.log(3.0), abs=1e-6)
    assert torch.isfinite(logit(probs(0.0, 1.0))).all()


def test_whiten():
    x = torch.tensor([1.0, 2.0, 3.0, 6.0])  # mean 3, population std sqrt(3.5)
    w = whiten(x)
    assert w.tolist() == pytest.approx([(v - 3.0) / math.sqrt(3.5) for v in x.tolist()], abs=1e-5)
    assert whiten(x, shift_mean=False).tolist() == pytest.approx([(v - 3.0) / math.sqrt(3.5) + 3.0 for v in x.tolist()], abs=1e-5)


def test_shaped_reward_is_whitened_logit_of_the_chosen_rm():
    help_scores = torch.tensor([2.0, 1.0, -0.5, 3.0])
    safety_scores = torch.tensor([0.0, -2.5, 1.0, 4.0])    # sigmoid(−2.5) = 0.076 < 0.15: unsafe
    is_safety = torch.tensor([False, False, False, True])
    expected_raw = [2.0, -2.5, -0.5, 4.0]                     # LOGIT(σ(score)) = the chosen raw score
    raw = shaped_reward(help_scores, safety_scores, is_safety, whiten_batch=False)
    assert raw.tolist() == pytest.approx(expected_raw, abs=1e-4)
    shaped = shaped_reward(help_scores, safety_scores, is_safety)
    mean = sum(expected_raw) / 4
    std = math.sqrt(sum((v - mean) ** 2 for v in expected_raw) / 4)
    assert shaped.tolist() == pytest.approx([(v - mean) / std for v in expected_raw], abs=1e-4)
