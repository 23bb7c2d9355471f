"""Helpers shared by the tests (importable as `polyglot_test_utils`; fixtures live in conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "polyglot_llama" / "resources" / "sample_text"


def sample_records(lang: str) -> list[dict]:
    """The bundled sample paragraphs of one language: [{"id", "lang", "text"}, ...]."""
    path = SAMPLE_DIR / f"{lang}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def sample_texts(lang: str) -> list[str]:
    return [r["text"] for r in sample_records(lang)]


def train_sample_tokenizer(directory: Path, langs: list[str], vocab_size: int) -> Path:
    from polyglot_llama.tokenizer.train import save_tokenizer_dir, train_llama_tokenizer

    texts = [t for lang in langs for t in sample_texts(lang)]
    save_tokenizer_dir(train_llama_tokenizer(texts, vocab_size), directory)
    return directory


def make_tiny_model(tokenizer_dir: Path, output: Path, preset: str = "tiny", seed: int = 0, **overrides) -> Path:
    """Write a freshly initialised tiny Llama (GQA, 2 layers) for ``tokenizer_dir`` to ``output``."""
    from polyglot_llama.model.init import ModelInitConfig, run

    run(ModelInitConfig(tokenizer=str(tokenizer_dir), output=str(output), preset=preset, seed=seed, overrides=overrides))
    return output
