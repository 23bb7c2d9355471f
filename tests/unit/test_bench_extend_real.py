"""bench/bench_extend_real.py's own logic: when a kept --work folder may be reused, and the Korean Debian FAQ split
its ``--stage-text faq`` runs read and hold out."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("bench_extend_real")
    finally:
        sys.path.remove(str(BENCH))


KEPT = {"korean": "mixed", "fit_faq": False, "init": "distill", "untie_head": False, "init_hidden_weight": 0.0,
        "init_steps": None, "init_max_tokens": None, "init_average_last": None}


def test_a_kept_work_folder_serves_only_the_options_it_was_made_with(bench):
    assert bench.kept_work_clash(KEPT, dict(KEPT)) == ""
    # a folder of the first format also recorded the mixture's tokens: an extra key is no clash
    assert bench.kept_work_clash(KEPT | {"mixture_tokens": 80000}, dict(KEPT)) == ""
    assert bench.kept_work_clash(KEPT, KEPT | {"korean": "law", "init_steps": 48}) == (
        "--korean 'mixed', not 'law'; --init-steps None, not 48")
    assert bench.kept_work_clash({"korean": "mixed", "fit_faq": False}, dict(KEPT)) == (
        "--init None, not 'distill'; --untie-head None, not False; --init-hidden-weight None, not 0.0")
    # a folder made before --fit-faq existed says so rather than serving a run that wants the FAQ fitted
    assert bench.kept_work_clash(KEPT | {"fit_faq": None}, KEPT | {"fit_faq": True}) == "--fit-faq None, not True"


def test_faq_split_holds_out_three_whole_chapters(bench):
    train, held = bench.korean_faq_split()
    assert len(train) == 13 and sum(len(r["text"]) for r in train) == 35956
    assert len(held) == 18 and {len(t) for t in held} == {400}
    assert held[0].startswith("대부분의 배포판처럼, Debian GNU/Linux가 제공하는 것:")  # software, 5.1
    # the stage does not read what is held out: of the held-out records' 6,498 windows of 40 characters, one is in
    # the stage's text, a stock phrase before a link (bill 1809893 of korean_law shared 71 % with its siblings)
    stage = "\n".join(r["text"] for r in train)
    shared = [t[k:k + 40] for t in held for k in range(len(t) - 40 + 1) if t[k:k + 40] in stage]
    assert shared == [" 수 있습니다. 자세한 내용은 https://www.debian.org/"]
