"""The stage's one console progress bar, shared by its phases.

A stage with phases (DPO: reference pass, then training; rejection sampling: generation, then fine-tuning;
`corpus mix`: count, then write each source; `eval`: one task after another) shows them on one bar whose
description names the current phase and whose count starts over for each phase, instead of one bar per
phase. The CLI opens that bar with `start_stage` and closes it with `end_stage` (both from `runlog`); outside a
CLI run (a library call, the tests) `phase` is a plain tqdm bar as before.
"""

from __future__ import annotations

import time

from tqdm.auto import tqdm

# bar: the stage's tqdm, created by its first phase; ended_at: when the current phase closed (time.time(), s)
_stage: dict = {"active": False, "bar": None, "ended_at": None}


def start_stage() -> None:
    _stage.update(active=True, bar=None, ended_at=None)


def end_stage() -> None:
    """Leave the bar's last frame on the console (one line) and end the stage."""
    bar = _stage["bar"]
    if bar is not None:
        if _stage["ended_at"] is not None:  # the frame shows the phase's own time, not the saving after it
            idle = time.time() - _stage["ended_at"]
            bar.start_t += idle
            bar.last_print_t += idle  # else close() takes the bar as never shown: no final frame, no newline
        bar.close()
    _stage.update(active=False, bar=None, ended_at=None)


class _Phase:
    """One phase's view of the stage bar: counts and postfix go to the bar; closing ends the phase, not the bar."""

    def __init__(self, bar: tqdm, iterable):
        self.bar, self.iterable = bar, iterable

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.bar.update(1)
        self.close()

    def update(self, n: float = 1) -> None:
        self.bar.update(n)

    def set_postfix(self, *args, **kwargs) -> None:
        self.bar.set_postfix(*args, **kwargs)

    def set_postfix_str(self, *args, **kwargs) -> None:
        self.bar.set_postfix_str(*args, **kwargs)

    def close(self) -> None:
        self.bar.refresh()
        _stage["ended_at"] = time.time()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def phase(iterable=None, *, desc: str, total: float | None = None, unit: str = "it", initial: float = 0,
          disable: bool = False, **tqdm_options):
    """A progress bar for one phase of the stage (iterate it, or call update / set_postfix / close). In a CLI
    run every phase after the first takes over the stage's bar; the first phase's display options
    (``tqdm_options``, e.g. dynamic_ncols) hold for the whole stage, ``leave`` is ignored there (the bar stays)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if disable or not _stage["active"]:
        return tqdm(iterable, desc=desc, total=total, unit=unit, initial=initial, disable=disable, **tqdm_options)
    _stage["ended_at"] = None
    bar = _stage["bar"]
    if bar is None:
        tqdm_options.pop("leave", None)
        bar = _stage["bar"] = tqdm(desc=desc, total=total, unit=unit, initial=initial, **tqdm_options)
    else:
        bar.set_description_str(desc, refresh=False)
        bar.set_postfix_str("", refresh=False)
        bar.unit, bar.total = unit, total
        bar.reset()
        bar.n = bar.last_print_n = bar.initial = initial  # a resumed training loop starts at its saved step
        if initial:
            bar.refresh()
    return _Phase(bar, iterable)
