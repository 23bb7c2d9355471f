"""Shared fixtures: tiny tokenizers and models built from the project's own sample text (no downloads)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from polyglot_test_utils import SAMPLE_DIR, make_tiny_model, train_sample_tokenizer


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """One intra-op thread for the whole session: the tiny test models gain nothing from more, threads
    spin against each other on a shared CPU, and results (sampled answers above all) must not depend on
    which tests ran before. Subprocess tests set OMP_NUM_THREADS themselves."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def en_tokenizer_dir(tmp_path_factory) -> Path:
    """A Llama-2-style tokenizer (512 tokens) trained on the English sample only: the 'base' tokenizer."""
    return train_sample_tokenizer(tmp_path_factory.mktemp("en_tokenizer"), ["en"], 512)


@pytest.fixture(scope="session")
def multi_tokenizer_dir(tmp_path_factory) -> Path:
    """A tokenizer (2000 tokens) trained on every bundled language: for multilingual stage tests."""
    langs = sorted(p.stem for p in SAMPLE_DIR.glob("*.jsonl"))
    return train_sample_tokenizer(tmp_path_factory.mktemp("multi_tokenizer"), langs, 2000)


@pytest.fixture(scope="session")
def en_model_dir(tmp_path_factory, en_tokenizer_dir) -> Path:
    """An untrained tiny Llama on the English tokenizer (read-only: copy it before training in place)."""
    return make_tiny_model(en_tokenizer_dir, tmp_path_factory.mktemp("en_model") / "model")


@pytest.fixture(scope="session")
def multi_model_dir(tmp_path_factory, multi_tokenizer_dir) -> Path:
    """An untrained tiny Llama on the multilingual tokenizer (read-only)."""
    return make_tiny_model(multi_tokenizer_dir, tmp_path_factory.mktemp("multi_model") / "model")
