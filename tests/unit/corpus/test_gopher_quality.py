"""The fast Gopher quality filter makes exactly datatrove's decisions (and gives the same reasons)."""

from __future__ import annotations

import random

import real_text
from datatrove.data import Document
from datatrove.pipeline.filters.gopher_quality_filter import GopherQualityFilter
from polyglot_test_utils import SpaceWords, sample_texts

from polyglot_llama.corpus.gopher_quality import FastGopherQualityFilter
from polyglot_llama.corpus.words import word_tokenizer


def _same(language, texts, **params):
    reference = GopherQualityFilter(**params, language=language)
    fast = FastGopherQualityFilter(**params, language=language)
    outcomes = []
    for i, text in enumerate(texts):
        doc = Document(text=text, id=str(i))
        expected = reference.filter(doc)
        assert fast.filter(doc) == expected, (text[:80], params)
        outcomes.append(expected if expected is True else expected[1])
    return outcomes


def test_same_decisions_as_datatrove_on_random_documents():
    rng = random.Random(0)
    # punctuation-only words ("...", "—", "।"), a letter among digits ("3a"), digits only, Hangul, hashes, bullets
    vocab = ["the", "of", "and", "word", "longerword", "...", "—", "।", "3a", "42", "1.5", "#tag", "#", "…", "가나",
             "의", "!?", "x", "a-b", "²", "ǅ"]
    outcomes = set()
    for trial in range(1500):
        words = [rng.choice(vocab) for _ in range(rng.randint(1, 70))]
        lines = [rng.choice(["", "- ", "• ", "  "]) + " ".join(words[i:i + rng.randint(1, 9)])
                 for i in range(0, len(words), 6)]
        text = "\n".join(line + rng.choice(["", " ...", "…"]) for line in lines)
        scale = rng.uniform(0.5, 2)
        params = dict(min_doc_words=rng.choice([0, 5, 20]), max_doc_words=rng.choice([0, 30]),
                      min_avg_word_length=rng.choice([0, 1, 3 * scale]), max_avg_word_length=rng.choice([0, 6 * scale]),
                      max_symbol_word_ratio=rng.choice([0, 0.1 * scale]),
                      max_bullet_lines_ratio=rng.choice([0, 0.6 * scale]),
                      max_ellipsis_lines_ratio=rng.choice([0, 0.4 * scale]),
                      max_non_alpha_words_ratio=rng.choice([0, 0.8 * scale]), min_stop_words=rng.choice([0, 2, 4]),
                      stop_words=["the", "of", "and", "의"])
        outcomes.update(_same(SpaceWords(), [text], **params))
    # every rule decided some document: the comparison covered each branch, not just the first
    assert outcomes >= {True, "gopher_short_doc", "gopher_long_doc", "gopher_below_avg_threshold",
                        "gopher_above_avg_threshold", "gopher_too_many_hashes", "gopher_too_many_ellipsis",
                        "gopher_too_many_bullets", "gopher_too_many_end_ellipsis", "gopher_below_alpha_threshold",
                        "gopher_enough_stop_words"}, outcomes


def test_same_decisions_on_real_text_with_real_segmenters():
    # the ko recipe's thresholds (FineWeb-2's kor_Hang) on the real Korean text, whose bills are near the alpha limit
    ko = dict(min_avg_word_length=1, max_avg_word_length=6, max_non_alpha_words_ratio=0.791, min_stop_words=2,
              stop_words=["의", "다", "이", "는", "에", "을", "한", "년", "하", "은", "를"])
    outcomes = _same(word_tokenizer("ko", "datatrove_eojeol"), [d["text"] for d in real_text.documents("ko")], **ko)
    assert outcomes.count("gopher_below_alpha_threshold") == 2 and True in outcomes
    for lang in ["ja", "zh", "de", "en"]:
        texts = sample_texts(lang)
        _same(word_tokenizer(lang), ["\n".join(texts[i:i + 4]) for i in range(0, len(texts), 4)] + texts[:3])
