"""Word splitting that is right for every script without downloading anything.

datatrove's quality filters and MinHash take a `WordTokenizer`; its defaults need spaCy, Kiwi, jieba or
pythainlp (and spaCy pipelines), none of which a fresh install has. `ScriptWordTokenizer` is the
dependency-free fallback, by script rather than by language:

- Han and Hangul: one token per character. Chinese and Japanese do not separate words by spaces, and
  FineWeb-2's Korean/Chinese stopwords are mostly single syllables or characters (의, 는, 的, 是), so
  character tokens make those stopword lists and the `min_avg_word_length: 1` of its CJK configs meaningful.
- Hiragana and Katakana: one token per run. A katakana run is nearly always one (loan)word, a hiragana run
  one or two grammatical morphemes (ている, には); per-character tokens would make every common ending
  look like a repeated n-gram to Gopher's repetition filter.
- Thai, Lao, Khmer, Myanmar: one token per grapheme cluster (a base letter with its vowel and tone marks).
- Everything else: runs of letters, marks and digits (with inner apostrophes/hyphens), so German compounds
  and Russian or Hindi words stay whole.
- Punctuation and symbols: one token per character, as spaCy does, so Gopher's symbol ratios still work.

`segmenter: datatrove` in a recipe uses datatrove's own assignment instead (Kiwi for ko, spaCy+jieba
for zh, ...) where those optional packages are installed.
"""

from __future__ import annotations

from functools import lru_cache

import regex
from datatrove.utils.word_tokenizers import WordTokenizer, load_word_tokenizer

from ..errors import UserError

# One alternation, tried left to right at each position: character scripts first, then grapheme scripts,
# then ordinary words, then any single non-space character (punctuation, symbols, emoji).
_TOKEN = regex.compile(
    r"[\p{Han}\p{Hangul}]"
    r"|\p{Hiragana}+|[\p{Katakana}ー]+"
    r"|(?:[\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}]\p{M}*)"
    r"|(?:[\p{L}\p{N}][\p{L}\p{M}\p{N}]*(?:['’\-][\p{L}\p{M}\p{N}]+)*)"
    r"|\S",
    regex.VERSION1,
)
_SENTENCE = regex.compile(r"[^\n.!?。！？؟।]*(?:[.!?。！？؟।]+[\"'”’」』)]*|\n+|$)")


class ScriptWordTokenizer(WordTokenizer):
    """Dependency-free word splitter (see the module docstring); the same instance works for all languages."""

    def word_tokenize(self, text: str) -> list[str]:
        return _TOKEN.findall(text)

    def sent_tokenize(self, text: str) -> list[str]:
        return [s.strip() for s in _SENTENCE.findall(text) if s.strip()]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in _SENTENCE.finditer(text) if m.group().strip()]

    def __reduce__(self):  # pickled into executor tasks: rebuild instead of copying compiled state
        return (ScriptWordTokenizer, ())


SEGMENTERS = ("builtin", "datatrove")


@lru_cache(maxsize=None)
def word_tokenizer(language: str, segmenter: str = "builtin") -> WordTokenizer:
    """The word tokenizer for ``language``: builtin (no extra packages) or datatrove's per-language choice."""
    if segmenter == "builtin":
        return ScriptWordTokenizer(language)
    if segmenter != "datatrove":
        raise UserError(f"segmenter {segmenter!r} is unknown; use one of {', '.join(SEGMENTERS)}")
    try:
        return load_word_tokenizer(language)
    except (ValueError, ImportError) as e:
        raise UserError(
            f"segmenter 'datatrove' for {language!r}: {str(e).rstrip('.')}; pip install 'polyglot-llama[segmenters]' "
            "or use segmenter: builtin"
        ) from None
