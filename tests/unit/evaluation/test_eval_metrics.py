"""The bundled evaluate modules (exact match, chrF) load offline and match hand computations."""

import pytest

from polyglot_llama.evaluation.metrics import compute_metric, resolve_metric
from polyglot_llama.errors import UserError


def test_exact_match_normalises_case_width_and_punctuation():
    path = str(resolve_metric("exact_match"))
    result = compute_metric(path, ["Paris.", "ｓｅｏｕｌ", "東京", "Berlin"], [["paris"], ["Seoul"], ["東京。"], ["Bonn", "Wien"]])
    assert result == {"exact_match": pytest.approx(3 / 4)}


def test_chrf_matches_hand_computation():
    path = str(resolve_metric("chrf"))
    # "abc" vs "abd": unigrams P=R=2/3, bigrams P=R=1/2, trigrams 0; orders 4-6 have no n-grams.
    # F_n = P_n = R_n here, so chrF = 100 * (2/3 + 1/2 + 0) / 3.
    assert compute_metric(path, ["abc"], [["abd"]])["chrf"] == pytest.approx(100 * (2 / 3 + 1 / 2) / 3)
    assert compute_metric(path, ["좋은 아침입니다."], [["좋은 아침입니다."]])["chrf"] == pytest.approx(100.0)
    # Several references: the best one counts; whitespace is ignored.
    assert compute_metric(path, ["ab c"], [["xyz", "abc"]])["chrf"] == pytest.approx(100.0)


def test_unknown_metric_is_a_user_error():
    with pytest.raises(UserError, match="metric 'bleurt' not found"):
        resolve_metric("bleurt")
