"""Reward-model evaluation summaries: accuracy per language and strength, calibration bins, by hand."""

import math

import pytest

from polyglot_llama.evaluation.reward_eval import calibration_bins, summarize_pairs
from polyglot_llama.train.reward_data import PreferencePair


def _pair(lang, strength):
    return PreferencePair(prompt=[{"role": "user", "content": "q"}], chosen="a", rejected="b", strength=strength, lang=lang)


PAIRS = [_pair("en", "significantly_better"), _pair("en", "better"), _pair("ko", "significantly_better"),
         _pair("ko", "slightly_better"), _pair("ko", None)]
SCORES = [(2.0, -1.0), (0.5, 0.7), (1.0, 0.0), (0.2, 0.2), (-0.3, -0.6)]  # margins 3, -0.2, 1, 0 (tie), 0.3


def test_accuracy_per_language_and_strength_bucket():
    summary = summarize_pairs(PAIRS, SCORES, bins=2)
    assert summary["overall"]["accuracy"] == pytest.approx(3 / 5)
    assert summary["languages"]["en"] == {"accuracy": 0.5, "mean_margin": pytest.approx(1.4), "n": 2}
    assert summary["languages"]["ko"]["accuracy"] == pytest.approx(2 / 3)  # the tie counts as wrong
    assert list(summary["strength"]) == ["significantly_better", "better", "slightly_better", "unlabelled"]
    assert summary["strength"]["significantly_better"]["accuracy"] == 1.0
    assert summary["strength"]["slightly_better"]["accuracy"] == 0.0
    assert summary["language_strength"]["ko/unlabelled"]["n"] == 1
    assert summary["scores"]["chosen"]["max"] == 2.0 and summary["scores"]["rejected"]["min"] == -1.0


def test_calibration_bins_sort_by_absolute_margin():
    bins = calibration_bins(SCORES, 2)
    # |margins| sorted: 0 (tie: wrong), 0.2 (wrong) | 0.3, 1, 3 (all right)
    assert [b["n"] for b in bins] == [2, 3]
    assert bins[0]["accuracy"] == 0.0 and bins[1]["accuracy"] == 1.0
    assert bins[1]["abs_score_difference"] == pytest.approx((0.3 + 1 + 3) / 3)
    assert bins[1]["predicted_accuracy"] == pytest.approx(1 / (1 + math.exp(-(4.3 / 3))))
