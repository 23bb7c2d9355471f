import pytest

from polyglot_llama.annotate.agreement import agreement_by_language, cohens_kappa, percent_agreement


def test_kappa_balanced_hand_computed():
    # p_o = 6/8; both positions 4 a / 4 b, so p_e = (16 + 16) / 64 = 0.5; kappa = (0.75 - 0.5) / 0.5
    pairs = [("a", "a"), ("a", "a"), ("a", "b"), ("b", "b"), ("b", "a"), ("b", "b"), ("a", "a"), ("b", "b")]
    assert percent_agreement(pairs) == 0.75
    assert cohens_kappa(pairs) == pytest.approx(0.5)


def test_kappa_uses_each_position_marginals():
    # p_o = 0.8; first a=4 b=1, second a=3 b=2: p_e = (12 + 2) / 25 = 0.56; kappa = 0.24 / 0.44
    pairs = [("a", "a"), ("a", "a"), ("a", "a"), ("a", "b"), ("b", "b")]
    assert cohens_kappa(pairs) == pytest.approx(0.24 / 0.44)


def test_kappa_edge_cases():
    assert cohens_kappa([]) is None and percent_agreement([]) is None
    assert cohens_kappa([("a", "a"), ("a", "a")]) == 1.0
    assert cohens_kappa([("a", "b"), ("b", "a")]) == pytest.approx(-1.0)


def test_agreement_by_language_pairs_first_two_labels_per_item():
    rows = [{"item_id": 1, "lang": "ko", "choice": "a"}, {"item_id": 1, "lang": "ko", "choice": "a"},
            {"item_id": 2, "lang": "ko", "choice": "a"}, {"item_id": 2, "lang": "ko", "choice": "b"},
            {"item_id": 3, "lang": "ko", "choice": "b"},  # one label: not in the statistics
            {"item_id": 4, "lang": "en", "choice": "b"}, {"item_id": 4, "lang": "en", "choice": "b"}]
    out = agreement_by_language(rows)
    assert out["ko"]["items"] == 2 and out["ko"]["percent"] == 0.5
    # ko pairs (a,a), (a,b): p_o = 0.5, first a=2, second a=1 b=1: p_e = 2/4 = 0.5 -> kappa 0
    assert out["ko"]["kappa"] == pytest.approx(0.0)
    assert out["en"] == {"items": 1, "percent": 1.0, "kappa": 1.0}
