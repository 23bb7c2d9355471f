"""The fast Gopher repetition filter makes exactly datatrove's decisions (and gives the same reasons)."""

from __future__ import annotations

import random

import numpy as np

from datatrove.data import Document
from datatrove.pipeline.filters.gopher_repetition_filter import GopherRepetitionFilter
from polyglot_test_utils import SpaceWords, sample_texts

from polyglot_llama.corpus.repetition import FastGopherRepetitionFilter
from polyglot_llama.corpus.words import word_tokenizer


def _both(language, **params):
    return GopherRepetitionFilter(**params, language=language), FastGopherRepetitionFilter(**params, language=language)


def test_same_decisions_as_datatrove_on_random_repetitive_documents():
    reasons = _compare_on_random_documents()
    # the comparison covered every kind of outcome, not just one
    assert {True, "empty", "dup_line_frac", "dup_para_frac", "top_2_gram", "duplicated_5_n_grams"} <= reasons


def test_same_decisions_when_fingerprints_collide(monkeypatch):
    """With every power of the hash base 1, a fingerprint is the sum of the code points: "a b" and "b a" collide,
    and the filter must notice and fall back to the strings."""
    from polyglot_llama.corpus import repetition

    monkeypatch.setattr(repetition, "_powers", lambda length: (np.ones(length + 1, dtype=np.uint64),) * 2)
    fallbacks = []
    for name in ("_top_count", "_repeated_chars_of_candidates"):
        original = getattr(repetition, name)
        monkeypatch.setattr(repetition, name, lambda *a, original=original, name=name: (
            result := original(*a), result is None and fallbacks.append(name))[0])
    reasons = _compare_on_random_documents()
    assert {"top_2_gram", "duplicated_5_n_grams"} <= reasons
    assert {"_top_count", "_repeated_chars_of_candidates"} <= set(fallbacks)


def _compare_on_random_documents() -> set:
    rng = random.Random(0)
    vocab = ["a", "b", "ab", "c", "bc", "abc", "d", "가", "나다", "가나", "다"]  # "".join makes ab+c == a+bc
    reasons = set()
    for trial in range(1500):
        words = [rng.choice(vocab[: rng.randint(2, len(vocab))]) for _ in range(rng.randint(0, 60))]
        lines = [" ".join(words[i:i + rng.randint(1, 8)]) for i in range(0, len(words), 5)]
        text = rng.choice(["\n", "\n\n", " "]).join(lines) or rng.choice(["", "x"])
        scale, top = rng.uniform(0.3, 3), rng.choice([1, 100])  # top = 100: let the n-gram rules decide
        params = dict(dup_line_frac=0.3 * scale, dup_para_frac=rng.choice([0, 0.3 * scale]),
                      dup_line_char_frac=rng.choice([0, 0.2 * scale]), dup_para_char_frac=0.2 * scale,
                      top_n_grams=((2, 0.2 * scale * top), (3, 0.18 * scale * top), (4, 0.16 * scale * top)),
                      dup_n_grams=tuple((n, (0.2 - 0.01 * n) * scale) for n in range(5, 11)))
        reference, fast = _both(SpaceWords(), **params)
        doc = Document(text=text, id=str(trial))
        expected = reference.filter(doc)
        assert fast.filter(doc) == expected, (text, params)
        reasons.add(expected if expected is True else expected[1])
    return reasons


def test_same_decisions_on_real_segmenters_and_sample_text():
    for lang in ["ko", "ja", "zh", "de", "en"]:
        texts = sample_texts(lang)
        docs = ["\n".join(texts[i:i + 4]) for i in range(0, len(texts), 4)]
        docs += ["\n".join([texts[0]] * 3 + texts[1:3]), (texts[0] + " ") * 4]  # repeated lines / n-grams
        reference, fast = _both(word_tokenizer(lang), dup_para_frac=0, dup_line_char_frac=0, dup_para_char_frac=0)
        for i, text in enumerate(docs):
            doc = Document(text=text, id=f"{lang}-{i}")
            assert fast.filter(doc) == reference.filter(doc), (lang, i)


def test_all_distinct_n_grams_still_fail_a_negative_threshold_as_in_datatrove():
    # datatrove compares 0 repeated characters with the threshold too: 0 > -0.01 rejects
    params = dict(dup_para_frac=0, dup_line_char_frac=0, dup_para_char_frac=0, top_n_grams=(),
                  dup_n_grams=((5, 0.5), (6, -0.01)))
    reference, fast = _both(SpaceWords(), **params)
    doc = Document(text="one two three four five six seven eight", id="distinct")
    assert reference.filter(doc) == (False, "duplicated_6_n_grams")
    assert fast.filter(doc) == (False, "duplicated_6_n_grams")
