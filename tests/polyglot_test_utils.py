"""Helpers shared by the tests (importable as `polyglot_test_utils`; fixtures live in conftest.py)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from datatrove.utils.word_tokenizers import WordTokenizer

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "polyglot_llama" / "resources" / "sample_text"


def sample_records(lang: str) -> list[dict]:
    """The bundled sample paragraphs of one language: [{"id", "lang", "text"}, ...]."""
    path = SAMPLE_DIR / f"{lang}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def sample_texts(lang: str) -> list[str]:
    return [r["text"] for r in sample_records(lang)]


class SpaceWords(WordTokenizer):
    """A word tokenizer that splits at single spaces only, so a filter test can hand datatrove's filter and
    ours any word list it likes."""

    def word_tokenize(self, text):
        return [w for w in text.split(" ") if w]

    def sent_tokenize(self, text):
        return [text]

    def span_tokenize(self, text):
        return [(0, len(text))]


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


def write_jsonl(path: Path, records: list[dict]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return str(path)


def language_match_pairs(split: str, per_lang: int, rng: random.Random, langs: list[str], window: int = 20,
                         strengths: tuple[str, ...] = ()) -> list[dict]:
    """Preference pairs whose preference is "answer in the prompt's language": prompt and chosen are random
    ``window``-character windows of one language's sample paragraphs, rejected a window of another language.
    Train and validation windows come from disjoint paragraphs (the first 4/5 and the rest). With
    ``strengths``, each pair draws a strength label after its windows."""
    pools = {}
    for lang in langs:
        texts = sample_texts(lang)
        cut = len(texts) * 4 // 5
        pools[lang] = texts[:cut] if split == "train" else texts[cut:]

    def snippet(lang: str) -> str:
        text = rng.choice(pools[lang])
        start = rng.randrange(0, max(1, len(text) - window))
        return text[start:start + window].strip()

    pairs = []
    for lang in langs:
        for _ in range(per_lang):
            pair = {"prompt": snippet(lang), "chosen": snippet(lang),
                    "rejected": snippet(rng.choice([m for m in langs if m != lang])), "lang": lang}
            if strengths:
                pair["strength"] = rng.choice(strengths)
            pairs.append(pair)
    rng.shuffle(pairs)
    return pairs
