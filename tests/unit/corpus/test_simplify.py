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
