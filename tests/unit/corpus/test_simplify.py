"""Exact-dedup / MinHash text simplification: the same strings as datatrove's `simplify_text`, faster."""

from __future__ import annotations

from datatrove.utils.text import TextNormConfig
from datatrove.utils.text import simplify_text as datatrove_simplify_text

import real_text
from polyglot_llama.corpus.simplify import simplify_text


def test_same_strings_as_datatrove():
    # hand-checked: marks go after NFD (é → e, ệ → e), Hangul syllables become jamo (NFD), numbers → 0
    assert simplify_text("Việt Nam, café 2024!") == datatrove_simplify_text("Việt Nam, café 2024!") == "viet nam cafe 0"
    assert simplify_text("한글") == "\u1112\u1161\u11ab\u1100\u1173\u11af"
    texts = [d["text"] for lang in ("ko", "ja", "zh") for d in real_text.documents(lang)]
    texts += [
        "Ångström naïve ﬁ ½ ² e\u0301\u0301 \u0301x  \u0301 ", "\u0301", " \u0301 a \u0301 ",
        "a\U000E0100b \U0001D165x 😀\u0301 नमस्ते ไทย ภาษา עִברִית",  # marks beyond the BMP (variation selector, music)
        "Straße ÄÖÜ Œuvre Ελληνικά ά Привет й",
    ]
    for text in texts:
        assert simplify_text(text) == datatrove_simplify_text(text), text[:40]
    no_marks = TextNormConfig(norm_unicode_diacritics=False)
    assert simplify_text("café", no_marks) == "café"


def test_same_strings_as_datatrove_with_every_option_combination():
    import itertools

    texts = ["  ...Monday, 3.5 km!? «Ça» -- va\x1c\t\u3000 bien;  January 2024… ", "!!!", " , ", "",
             "Tuesday—12,000 people (ＡＢＣ) 〔한국〕 Straße\u2028end.", real_text.documents("ko")[0]["text"][:300]]
    fields = ["lowercase", "norm_whitespace", "remove_punctuation", "norm_unicode_diacritics", "norm_numbers",
              "norm_weekdays", "norm_monthnames"]
    for values in itertools.product([True, False], repeat=len(fields)):
        config = TextNormConfig(**dict(zip(fields, values)))
        for text in texts:
            assert simplify_text(text, config) == datatrove_simplify_text(text, config), (values, text[:30])
    assert simplify_text(texts[0]) == "monday 0 km ca va bien january 0"  # hand-checked: default options
