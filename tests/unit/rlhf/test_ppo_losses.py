"""PPO maths against hand-computed values: KL-penalised rewards, GAE, clipped losses, whitening, entropy."""

from __future__ import annotations

import math

import torch

from polyglot_llama.train.losses import (
    entropy_from_logits, gae, kl_penalised_rewards, masked_mean, masked_whiten, per_token_kl, ppo_policy_loss,
    ppo_value_loss,
)

T = torch.tensor


def test_masked_mean_and_whiten():
    x = T([[1.0, 2.0, 3.0, 100.0]])
    mask = T([[1.0, 1.0, 1.0, 0.0]])
    assert masked_mean(x, mask).item() == 2.0
    # mean 2, population variance 2/3 over the three counted values; the padded 100 is ignored and zeroed
    w = masked_whiten(x, mask, eps=0.0)
    s = math.sqrt(2 / 3)
    assert torch.allclose(w, T([[-1 / s, 0.0, 1 / s, 0.0]]), atol=1e-6)
    kept = masked_whiten(x, mask, shift_mean=False, eps=0.0)
    assert torch.allclose(kept, T([[2 - 1 / s, 2.0, 2 + 1 / s, 0.0]]), atol=1e-6)


def test_kl_penalised_rewards_put_score_on_last_token():
    logprobs = T([[-1.0, -2.0, -0.5], [-1.0, -1.0, -1.0]])
    ref = T([[-1.5, -1.0, -0.5], [-2.0, -3.0, -1.0]])
    mask = T([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    rewards, kl = kl_penalised_rewards(T([2.0, -1.0]), logprobs, ref, mask, beta=0.1)
    assert torch.allclose(per_token_kl(logprobs, ref), T([[0.5, -1.0, 0.0], [1.0, 2.0, 0.0]]))
    assert torch.allclose(kl, T([[0.5, -1.0, 0.0], [1.0, 2.0, 0.0]]))
    # row 0: -0.1*kl, +2 on token 2; row 1: -0.1*kl, -1 on token 1 (its last), padding stays 0
    assert torch.allclose(rewards, T([[-0.05, 0.1, 2.0], [-0.1, -1.2, 0.0]]), atol=1e-6)


def test_gae_hand_computed():
    # one response of 3 tokens, γ = 1, λ = 0.5
    rewards = T([[0.0, 0.0, 1.0]])
    values = T([[0.5, 0.25, 0.75]])
    mask = T([[1.0, 1.0, 1.0]])
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=0.5)
    # δ2 = 1 - 0.75 = 0.25; δ1 = 0 + 0.75 - 0.25 = 0.5; δ0 = 0 + 0.25 - 0.5 = -0.25
    # A2 = 0.25; A1 = 0.5 + 0.5*0.25 = 0.625; A0 = -0.25 + 0.5*0.625 = 0.0625
    assert torch.allclose(adv, T([[0.0625, 0.625, 0.25]]))
    assert torch.allclose(ret, T([[0.5625, 0.875, 1.0]]))


def test_gae_ignores_padding_and_discounts():
    rewards = T([[0.0, 2.0, 9.0]])
    values = T([[1.0, 1.0, 9.0]])  # position 2 is padding: its value must not leak into position 1
    mask = T([[1.0, 1.0, 0.0]])
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=1.0)
    # δ1 = 2 - 1 = 1; δ0 = 0 + 0.9*1 - 1 = -0.1; A1 = 1; A0 = -0.1 + 0.9*1 = 0.8
    assert torch.allclose(adv, T([[0.8, 1.0, 0.0]]))
    assert torch.allclose(ret, T([[1.8, 2.0, 0.0]]))
    # λ = 1, γ = 1 and V = 0: advantages are the rewards-to-go
    adv, _ = gae(T([[1.0, 2.0, 3.0]]), torch.zeros(1, 3), torch.ones(1, 3), 1.0, 1.0)
    assert torch.allclose(adv, T([[6.0, 5.0, 3.0]]))


def test_policy_loss_clips_hand_computed():
    old = torch.zeros(1, 3)
    new = T([[math.log(1.5), math.log(0.9), math.log(0.5)]])  # ratios 1.5, 0.9, 0.5
    adv = T([[1.0, 1.0, -1.0]])
    mask = torch.ones(1, 3)
    loss, stats = ppo_policy_loss(new, old, adv, mask, clip=0.2)
    # token 0: max(-1.5, -1.2) = -1.2 (clipped); token 1: max(-0.9, -0.9) = -0.9;
    # token 2: A<0, max(0.5, 0.8) = 0.8 (clipped)  → mean (-1.2 - 0.9 + 0.8)/3
    assert math.isclose(loss.item(), (-1.2 - 0.9 + 0.8) / 3, rel_tol=1e-6)
    assert math.isclose(stats["clip_fraction"].item(), 2 / 3, rel_tol=1e-6)
    expected_kl = 0.5 * (math.log(1.5) ** 2 + math.log(0.9) ** 2 + math.log(0.5) ** 2) / 3
    assert math.isclose(stats["approx_kl"].item(), expected_kl, rel_tol=1e-6)
    # gradient flows only through the unclipped token
    new.requires_grad_(True)
    ppo_policy_loss(new, old, adv, mask, clip=0.2)[0].backward()
    assert new.grad[0, 0] == 0 and new.grad[0, 2] == 0 and math.isclose(new.grad[0, 1].item(), -0.9 / 3, rel_tol=1e-6)


def test_value_loss_clips_hand_computed():
    old = T([[1.0, 1.0]])
    values = T([[2.0, 1.1]])
    returns = T([[3.0, 0.0]])
    loss, clip_fraction = ppo_value_loss(values, old, returns, torch.ones(1, 2), clip=0.2)
    # token 0: unclipped (2-3)^2 = 1, clipped (1.2-3)^2 = 3.24 → 3.24; token 1: (1.1)^2 = 1.21 both
    assert math.isclose(loss.item(), 0.5 * (3.24 + 1.21) / 2, rel_tol=1e-6)
    assert math.isclose(clip_fraction.item(), 0.5)


def test_entropy_uniform_and_peaked():
    assert math.isclose(entropy_from_logits(torch.zeros(4)).item(), math.log(4), rel_tol=1e-6)
    assert entropy_from_logits(T([100.0, 0.0, 0.0])).item() < 1e-6
