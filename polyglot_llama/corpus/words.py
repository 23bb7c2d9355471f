"""Word splitting for the quality filters: FineWeb-2's real segmenters by default, a script splitter as fallback.

datatrove's quality filters take a `WordTokenizer`. `segmenter: datatrove` (the default) uses the one
datatrove assigns to the language in its ``assets/tokenizer_assignment.csv``, which is what FineWeb-2's
per-language thresholds were computed with: Kiwi (``KiwiTokenizer``, kiwipiepy, model ``sbg``) for ko,
spaCy ``ja`` with SudachiPy for ja, spaCy ``zh`` with jieba for zh, PyThaiNLP ``newmm-safe`` for th and
spaCy's rule-based tokenizers for de and en. These are core dependencies of the package.

`ScriptWordTokenizer` (``segmenter: builtin``) is the dependency-free fallback, by script rather than by
language, and what MinHash shingles use (near-duplicate detection needs no morphology):

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

FineWeb-2's thresholds assume real words: with one token per Hangul syllable the Korean constitution's
5-gram duplicate share is 0.240 (limit 0.201), with Kiwi's words 0.037.
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


class FullWidthDigitsJoined(WordTokenizer):
    """Wraps a tokenizer so that a run of full-width digit tokens is one word, as jieba does for ASCII digits.

    jieba splits "１９９７年" into "１", "９", "９", "７", "年" but "1997年" into "1997", "年"; Chinese print
    and news sites often write full-width digits, and one word per digit pushes clean news below Gopher's
    share of words with a letter (max_non_alpha_words_ratio). Sentence splitting is the wrapped one's.
    """

    def __init__(self, inner: WordTokenizer):
        super().__init__(inner.language)
        self.inner = inner

    def word_tokenize(self, text: str) -> list[str]:
        words: list[str] = []
        for word in self.inner.word_tokenize(text):
            if words and _FULL_WIDTH_DIGITS.fullmatch(word) and _FULL_WIDTH_DIGITS.fullmatch(words[-1]):
                words[-1] += word
            else:
                words.append(word)
        return words

    def sent_tokenize(self, text: str) -> list[str]:
        return self.inner.sent_tokenize(text)

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return self.inner.span_tokenize(text)


_FULL_WIDTH_DIGITS = regex.compile(r"[０-９]+")
SEGMENTERS = ("datatrove", "builtin")
# datatrove keys FineWeb-2 used where the bare ISO 639-1 code resolves differently: datatrove's table maps
# "zh" to spaCy's multilingual "xx" tokenizer (no segmentation at all), "cmn_Hani" to spaCy + jieba.
_DATATROVE_KEYS = {"zh": "cmn_Hani"}


@lru_cache(maxsize=None)
def word_tokenizer(language: str, segmenter: str = "datatrove") -> WordTokenizer:
    """The word tokenizer for ``language``: datatrove's per-language choice (FineWeb-2's) or the builtin one."""
    if segmenter == "builtin":
        return ScriptWordTokenizer(language)
    if segmenter != "datatrove":
        raise UserError(f"segmenter {segmenter!r} is unknown; use one of {', '.join(SEGMENTERS)}")
    try:
        tokenizer = load_word_tokenizer(_DATATROVE_KEYS.get(language, language))
    except (ValueError, ImportError) as e:
        raise UserError(
            f"segmenter 'datatrove' for {language!r}: {str(e).rstrip('.')}; reinstall polyglot-llama (its dependencies "
            "include the segmenters) or use segmenter: builtin"
        ) from None
    return FullWidthDigitsJoined(tokenizer) if language == "zh" else tokenizer
