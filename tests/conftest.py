"""Shared fixtures: tiny tokenizers and models built from the project's own sample text (no downloads)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "polyglot_llama" / "resources" / "sample_text"


def sample_records(lang: str) -> list[dict]:
    """The bundled sample paragraphs of one language: [{"id", "lang", "text"}, ...]."""
    path = SAMPLE_DIR / f"{lang}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def sample_texts(lang: str) -> list[str]:
    return [r["text"] for r in sample_records(lang)]


def _train_tokenizer(directory: Path, langs: list[str], vocab_size: int) -> Path:
    from polyglot_llama.tokenizer.train import save_tokenizer_dir, train_llama_tokenizer

    texts = [t for lang in langs for t in sample_texts(lang)]
    save_tokenizer_dir(train_llama_tokenizer(texts, vocab_size), directory)
    return directory


@pytest.fixture(scope="session")
def en_tokenizer_dir(tmp_path_factory) -> Path:
    """A Llama-2-style tokenizer (512 tokens) trained on the English sample only: the 'base' tokenizer."""
    return _train_tokenizer(tmp_path_factory.mktemp("en_tokenizer"), ["en"], 512)


@pytest.fixture(scope="session")
def multi_tokenizer_dir(tmp_path_factory) -> Path:
    """A tokenizer (2000 tokens) trained on every bundled language: for multilingual stage tests."""
    langs = sorted(p.stem for p in SAMPLE_DIR.glob("*.jsonl"))
    return _train_tokenizer(tmp_path_factory.mktemp("multi_tokenizer"), langs, 2000)


def make_tiny_model(tokenizer_dir: Path, output: Path, preset: str = "tiny", seed: int = 0, **overrides) -> Path:
    """Write a freshly initialised tiny Llama (GQA, 2 layers) for ``tokenizer_dir`` to ``output``."""
    from polyglot_llama.model.init import ModelInitConfig, run

    run(ModelInitConfig(tokenizer=str(tokenizer_dir), output=str(output), preset=preset, seed=seed, overrides=overrides))
    return output


@pytest.fixture(scope="session")
def en_model_dir(tmp_path_factory, en_tokenizer_dir) -> Path:
    """An untrained tiny Llama on the English tokenizer (read-only: copy it before training in place)."""
    return make_tiny_model(en_tokenizer_dir, tmp_path_factory.mktemp("en_model") / "model")


@pytest.fixture(scope="session")
def multi_model_dir(tmp_path_factory, multi_tokenizer_dir) -> Path:
    """An untrained tiny Llama on the multilingual tokenizer (read-only)."""
    return make_tiny_model(multi_tokenizer_dir, tmp_path_factory.mktemp("multi_model") / "model")
