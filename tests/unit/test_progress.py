"""`progress.phase`: inside a CLI stage its phases take turns on one bar; outside one it is a plain tqdm bar."""

from __future__ import annotations

import io

from polyglot_llama import progress


def _frames(text: str) -> list[str]:
    return [f.rstrip() for f in text.replace("\n", "\r").split("\r") if f.strip()]


def test_phases_share_one_bar_and_a_resumed_phase_counts_from_its_start():
    screen = io.StringIO()
    progress.start_stage()
    try:
        assert list(progress.phase(range(2), desc="reference pass", unit="batch", file=screen)) == [0, 1]
        bar = progress.phase(total=5, initial=3, desc="train")  # a training loop resumed at step 3 of 5
        bar.update(1)
        bar.set_postfix(loss="0.5")
        bar.close()
    finally:
        progress.end_stage()
    frames = _frames(screen.getvalue())
    assert screen.getvalue().count("\n") == 1 and screen.getvalue().endswith("\n")  # one line, ended once
    assert frames[0].startswith("reference pass:   0%|") and frames[0].endswith("0/2 [00:00<?, ?batch/s]")
    assert frames[-1].startswith("train:  80%|") and "| 4/5 [" in frames[-1] and frames[-1].endswith("it/s, loss=0.5]")
    assert not any("reference pass" in f and "/5" in f for f in frames)  # the new phase's description replaced the old


def test_outside_a_stage_each_phase_is_its_own_bar():
    screen = io.StringIO()
    for name in ("count", "write"):
        list(progress.phase(range(2), desc=name, file=screen, mininterval=0))
    assert screen.getvalue().count("\n") == 2  # two bars, each closed on its own line
