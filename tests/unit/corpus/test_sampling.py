"""The sampling maths of `corpus mix` against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from polyglot_llama.corpus import sampling
from polyglot_llama.errors import UserError


def test_temperature_shares_hand_computed():
    # sqrt(900) = 30, sqrt(100) = 10 → 30/40, 10/40.
    assert sampling.temperature_shares({"en": 900, "ko": 100}, 0.5) == pytest.approx({"en": 0.75, "ko": 0.25})
    assert sampling.temperature_shares({"en": 900, "ko": 100}, 1.0) == pytest.approx({"en": 0.9, "ko": 0.1})
    assert sampling.temperature_shares({"en": 900, "ko": 100}, 0.0) == pytest.approx({"en": 0.5, "ko": 0.5})
    # mT5's alpha = 0.3: 1000^0.3 = 10^0.9 = 7.9433; 1^0.3 = 1 → 7.9433 / 8.9433 = 0.88818.
    shares = sampling.temperature_shares({"big": 1000, "small": 1}, 0.3)
    assert shares["big"] == pytest.approx(0.888184, abs=1e-6)
    assert shares["small"] == pytest.approx(0.111816, abs=1e-6)


def test_temperature_shares_do_not_overflow_on_huge_corpora():
    shares = sampling.temperature_shares({"en": 2e12, "sw": 2e9}, 0.3)
    # (2e12 / 2e9)^0.3 = 1000^0.3 = 7.9433 → same split as above.
    assert shares["en"] == pytest.approx(0.888184, abs=1e-6)


def test_unimax_hand_computed():
    # Smallest first: a gets min(600/3 = 200, 2·10 = 20) = 20; 580 left → b gets min(290, 200) = 200;
    # 380 left → c gets min(380, 2000) = 380.
    budgets = sampling.unimax_budgets({"c": 1000, "a": 10, "b": 100}, total_budget=600, max_epochs=2)
    assert budgets == pytest.approx({"c": 380, "a": 20, "b": 200})
    assert list(budgets) == ["c", "a", "b"]  # input order kept


def test_unimax_uniform_when_nothing_is_capped_and_unused_budget_when_all_are():
    assert sampling.unimax_budgets({"a": 1000, "b": 5000}, 1000, 4) == pytest.approx({"a": 500, "b": 500})
    # Both capped at 1 epoch: 10 + 10 of the 100 requested tokens can be used.
    assert sampling.unimax_budgets({"a": 10, "b": 10}, 100, 1) == pytest.approx({"a": 10, "b": 10})


def test_replay_takes_its_share_and_the_method_splits_the_rest():
    # Replay en = 10 % of 1000 → 100; ko and ja split 900 in proportion (alpha 1) 100 : 400.
    budgets = sampling.language_budgets({"en": 900, "ko": 100, "ja": 400}, 1000, "temperature", alpha=1.0,
                                        replay_lang="en", replay_share=0.1)
    assert budgets == pytest.approx({"en": 100, "ko": 180, "ja": 720})
    # UniMax over the non-replay languages only: 900 split 450 / 450, ko capped at 2·100 = 200 → ja 700.
    budgets = sampling.language_budgets({"en": 900, "ko": 100, "ja": 400}, 1000, "unimax", max_epochs=2,
                                        replay_lang="en", replay_share=0.1)
    assert budgets == pytest.approx({"en": 100, "ko": 200, "ja": 700})
    # Share 0 is "no English at all" (the no-replay ablation).
    budgets = sampling.language_budgets({"en": 900, "ko": 100}, 1000, "temperature", replay_lang="en", replay_share=0.0)
    assert budgets == pytest.approx({"en": 0, "ko": 1000})


def test_explicit_weights_are_normalised():
    budgets = sampling.language_budgets({"en": 5, "ko": 5}, 400, "weights", weights={"ko": 3, "en": 1})
    assert budgets == pytest.approx({"en": 100, "ko": 300})
    # A language without a weight gets nothing.
    assert sampling.language_budgets({"en": 5, "ko": 5}, 400, "weights", weights={"ko": 2})["en"] == 0


@pytest.mark.parametrize("kwargs, message", [
    (dict(method="weights", weights={"ko": 0, "en": 0}), "sums to 0"),
    (dict(method="weights", weights={"ko": -1, "en": 2}), "non-negative"),
    (dict(method="weights", weights={"ja": 1}), "'weights.ja' names a language without a source"),
    (dict(method="temperature", replay_lang="en", replay_share=1.0), "replay.share"),
    (dict(method="temperature", replay_lang="en", replay_share=-0.1), "replay.share"),
    (dict(method="temperature", replay_lang="de", replay_share=0.1), "no source has that language"),
    (dict(method="weights", weights={"en": 1, "ko": 1}, replay_lang="en", replay_share=0.1), "not both"),
    (dict(method="unimax", max_epochs=0), "epoch cap"),
    (dict(method="temperature", alpha=1.5), "alpha"),
    (dict(method="zipf"), "method"),
])
def test_bad_input_is_a_one_line_user_error(kwargs, message):
    with pytest.raises(UserError, match=message) as info:
        sampling.language_budgets({"en": 900, "ko": 100}, 1000, **kwargs)
    assert "\n" not in str(info.value)


def test_rehydration_weights_follow_fineweb2_table():
    sizes = np.array([1, 2, 3, 4, 5, 99, 100, 999, 1000, 5000])
    weights = sampling.rehydration_weights(sizes, sampling.FINEWEB2_REHYDRATION)
    assert weights.tolist() == [1, 2, 3, 3, 5, 5, 8, 8, 1, 1]
    # Sizes below the smallest threshold keep weight 1.
    assert sampling.rehydration_weights(np.array([1, 3]), {2: 4.0}).tolist() == [1.0, 4.0]


def test_split_budget_by_effective_tokens():
    assert sampling.split_budget(900, {"wiki": 100 * 3.0, "web": 600}) == pytest.approx({"wiki": 300, "web": 600})
    assert sampling.split_budget(900, {"empty": 0}) == {"empty": 0.0}


def test_repeat_counts_exact_when_expectations_are_whole():
    # mass = 10·1 + 20·1 + 30·2 = 90; budget 180 → expected copies 2, 2, 4 exactly, whatever the seed.
    for seed in range(5):
        copies = sampling.repeat_counts(np.array([10, 20, 30]), np.array([1.0, 1.0, 2.0]), 180, np.random.default_rng(seed))
        assert copies.tolist() == [2, 2, 4]


def test_repeat_counts_are_unbiased_stochastic_rounding():
    tokens, weights = np.array([10, 20, 30]), np.array([1.0, 1.0, 2.0])
    expected = 220 * weights / 90  # 2.444, 2.444, 4.889
    rng = np.random.default_rng(0)
    draws = np.stack([sampling.repeat_counts(tokens, weights, 220, rng) for _ in range(4000)])
    assert ((draws == np.floor(expected)) | (draws == np.ceil(expected))).all()
    # Mean of 4000 Bernoulli-rounded draws: standard error ≤ 0.5 / sqrt(4000) ≈ 0.008.
    np.testing.assert_allclose(draws.mean(axis=0), expected, atol=0.04)


def test_drawn_tokens_match_budget_within_sampling_error():
    rng = np.random.default_rng(1)
    tokens = rng.integers(20, 2000, size=3000)
    weights = sampling.rehydration_weights(rng.integers(1, 200, size=3000), sampling.FINEWEB2_REHYDRATION)
    for budget in (0.3 * tokens.sum(), 2.7 * tokens.sum()):  # subsampling and upsampling
        copies = sampling.repeat_counts(tokens, weights, budget, rng)
        expected = budget * weights / (tokens * weights).sum()
        frac = expected - np.floor(expected)
        sigma = np.sqrt((tokens.astype(float) ** 2 * frac * (1 - frac)).sum())
        assert abs((copies * tokens).sum() - budget) < 4 * sigma
        assert sigma < 0.05 * budget  # 3000 documents: the error is a few per cent of the budget at most


def test_repeat_counts_zero_budget_or_mass():
    rng = np.random.default_rng(0)
    assert sampling.repeat_counts(np.array([5, 5]), np.ones(2), 0, rng).tolist() == [0, 0]
    assert sampling.repeat_counts(np.array([5, 5]), np.zeros(2), 100, rng).tolist() == [0, 0]
