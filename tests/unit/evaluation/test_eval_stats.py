"""Intervals and paired tests against hand computations, and their place in results.md, report.html and plots."""

import pytest

from polyglot_llama.evaluation.report import html_report, markdown_report
from polyglot_llama.evaluation.stats import (
    add_uncertainty,
    bootstrap_interval,
    mcnemar_exact,
    paired_bootstrap,
    wilson_interval,
)


def test_wilson_interval_hand_computed():
    # 8/10: center (0.8 + z²/20) / (1 + z²/10) = 0.71674, half z·sqrt(0.016 + z²/400) / (1 + z²/10) = 0.22658
    assert wilson_interval(8, 10) == pytest.approx((0.49016, 0.94332), abs=1e-5)
    # 0/5: [0, (z²/5) / (1 + z²/5)] = [0, 0.43448]; never below 0 as the normal interval would go
    assert wilson_interval(0, 5) == pytest.approx((0.0, 0.43448), abs=1e-5)


def test_mcnemar_exact_hand_computed():
    assert mcnemar_exact(1, 6) == pytest.approx(2 * (1 + 7) / 2 ** 7)  # 0.125
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 2 ** 6)  # 0.03125
    assert mcnemar_exact(3, 3) == 1.0 and mcnemar_exact(0, 0) == 1.0


def test_bootstrap_intervals_and_paired_bootstrap():
    assert bootstrap_interval([0.5] * 10) == (0.5, 0.5)
    low, high = bootstrap_interval([0.1, 0.9, 0.4, 0.6, 0.2, 0.8])
    assert 0.1 < low < 0.5 < high < 0.9
    assert paired_bootstrap([0.1, 0.2, 0.3], [0.5, 0.6, 0.9]) == 0.0  # every difference positive
    assert paired_bootstrap([0.1, 0.2], [0.1, 0.2]) == 1.0


def _results():
    base_en, other_en = [1, 1, 1, 1, 1, 1, 0, 0], [0] * 8  # b = 6, c = 0: p = 2 / 64
    base_ko, other_ko = [1, 0, 1, 0], [0, 1, 1, 0]  # b = 1, c = 1: p = 1
    def mc(outcomes):
        return {"accuracy": sum(outcomes) / len(outcomes), "n": len(outcomes), "outcomes": outcomes}
    return {
        "suite": "s", "suite_file": "s.yaml", "created": "now",
        "models": [{"name": "base", "path": "b", "fingerprint": "f1", "error": None},
                   {"name": "tuned", "path": "t", "fingerprint": "f2", "error": None}],
        "tasks": [
            {"name": "mc", "kind": "multiple_choice", "primary": "accuracy", "higher_is_better": True,
             "results": {"base": {"languages": {"en": mc(base_en), "ko": mc(base_ko)}},
                         "tuned": {"languages": {"en": mc(other_en), "ko": mc(other_ko)}}}},
            {"name": "harness", "kind": "lm_eval_harness", "primary": "acc", "higher_is_better": True,
             "results": {"base": {"languages": {"de": {"acc": 0.8, "n": 10}}}, "tuned": {"error": "boom"}}},
        ],
    }


def test_add_uncertainty_marks_significant_differences_in_the_reports():
    results = _results()
    add_uncertainty(results)
    mc, harness = results["tasks"]
    assert mc["results"]["base"]["languages"]["en"]["ci95"] == pytest.approx(list(wilson_interval(6, 8)))
    assert mc["results"]["tuned"]["languages"]["en"]["ci_method"] == "wilson"
    en, ko = mc["comparisons"]["en"]["tuned"], mc["comparisons"]["ko"]["tuned"]
    assert (en["test"], en["n"], en["significant"]) == ("mcnemar_exact", 8, True)
    assert en["p_value"] == pytest.approx(2 / 64)
    assert (ko["p_value"], ko["significant"]) == (1.0, False)
    # No per-item outcomes (an lm-eval row): Wilson from value and n, and no paired test.
    assert harness["results"]["base"]["languages"]["de"]["ci95"] == pytest.approx([0.49016, 0.94332], abs=1e-5)
    assert harness["comparisons"] == {}

    md = markdown_report(results)
    assert "| en (English) | **0.75** [0.409, 0.929] (n=8) | 0* [0, 0.324] (n=8) |" in md
    assert "en: tuned vs base: p = 0.0312 (mcnemar_exact, n=8) *" in md
    assert "ko: tuned vs base: p = 1 (mcnemar_exact, n=4)" in md
    page = html_report(results)
    assert "<sup class='sig'" in page and "[0.49, 0.943]" in page


def test_plot_draws_error_bars(tmp_path, monkeypatch):
    from polyglot_llama.evaluation import plots

    drawn = []
    original = plots.plt.Axes.bar

    def spy(ax, *args, **kwargs):
        drawn.append(kwargs.get("yerr"))
        return original(ax, *args, **kwargs)

    monkeypatch.setattr(plots.plt.Axes, "bar", spy)
    plots.grouped_bars({"a": {"en": 0.75, "ko": 0.5}}, tmp_path / "p.png", "t",
                       intervals={"a": {"en": [0.5, 0.9]}})
    assert drawn == [[[0.25, 0], [pytest.approx(0.15), 0]]]
    assert (tmp_path / "p.png").stat().st_size > 0


def test_bootstrap_ratio_interval_resamples_whole_documents():
    from polyglot_llama.evaluation.stats import bootstrap_ratio_interval

    # Every document at 2 bits per byte: every resample gives 2, whatever the lengths.
    assert bootstrap_ratio_interval([20.0, 60.0, 2.0], [10, 30, 1]) == (2.0, 2.0)
    # Two documents at 1 and 3 bits per byte, 10 bytes each: resamples give 1, 2 or 3 (an even mix).
    low, high = bootstrap_ratio_interval([10.0, 30.0], [10, 10])
    assert (low, high) == (1.0, 3.0)
