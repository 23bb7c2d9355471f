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
  A syllable written in conjoining jamo, as NFD writes every syllable (MinHash shingles are computed on
  datatrove's `simplify_text`, which ends in NFD), is one token too, not 2-3: 5-token shingles stay 5
  syllables, and a Korean document has 2.4 times fewer of them to hash.
- Hiragana and Katakana: one token per run. A katakana run is nearly always one (loan)word, a hiragana run
  one or two grammatical morphemes (ている, には); per-character tokens would make every common ending
  look like a repeated n-gram to Gopher's repetition filter.
- Thai, Lao, Khmer, Myanmar: one token per grapheme cluster (a base letter with its vowel and tone marks).
- Everything else: runs of letters, marks and digits (with inner apostrophes/hyphens), so German compounds
  and Russian or Hindi words stay whole.
- Punctuation and symbols: one token per character, as spaCy does, so Gopher's symbol ratios still work.

FineWeb-2's thresholds assume real words: with one token per Hangul syllable the Korean constitution's
5-gram duplicate share is 0.240 (limit 0.201), with Kiwi's words 0.037.

`EojeolKiwiTokenizer` (``segmenter: datatrove_eojeol``, the default of data_recipes/ko.yaml) is Kiwi with
the same model, run on each whitespace-delimited word (eojeol) on its own and memoised across documents. Kiwi ``sbg`` costs 50-90 ms
of CPU per 1,000 characters of Korean (140-170 fastText predictions); a cached eojeol costs a dict lookup.
It is not FineWeb-2's segmentation: without the neighbouring words Kiwi splits some eojeols differently
(따뜻한 stays whole, 오늘날 becomes 오늘 + 날), about 2 % of the words; docs/corpus.md has the measured
agreement of words and of decisions.
"""

from __future__ import annotations

import os
from functools import lru_cache
from itertools import chain

import regex
from datatrove.utils.word_tokenizers import KiwiTokenizer, WordTokenizer, load_word_tokenizer, strip_strings

from ..errors import UserError

# One alternation, tried left to right at each position: character scripts first, then grapheme scripts,
# then ordinary words, then any single non-space character (punctuation, symbols, emoji).
_TOKEN = regex.compile(
    r"\p{Han}"
    r"|[\u1100-\u115F\uA960-\uA97C]+[\u1160-\u11A7\uD7B0-\uD7C6]+[\u11A8-\u11FF\uD7CB-\uD7FB]*"  # L+ V+ T* jamo
    r"|\p{Hangul}"
    r"|\p{Hiragana}+|[\p{Katakana}ー]+"
    r"|(?:[\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}]\p{M}*)"
    r"|(?:[\p{L}\p{N}][\p{L}\p{M}\p{N}]*(?:['’\-][\p{L}\p{M}\p{N}]+)*)"
    r"|\S",
    regex.VERSION1,
)
_SENTENCE = regex.compile(r"[^\n.!?。！？؟।]*(?:[.!?。！？؟।]+[\"'”’」』)]*|\n+|$)")


class ScriptWordTokenizer(WordTokenizer):
    """Dependency-free word splitter (see the module docstring); the same instance works for all languages.

    No token contains whitespace, so the tokens of a text are those of its whitespace-delimited chunks in
    order; each distinct chunk is split once per process (at most ``max_entries`` remembered, then the memo
    starts over). MinHash runs this on every document, and a Korean one is ~1,000 one-syllable tokens: the
    regex per character cost as much as the rest of the signature.
    """

    def __init__(self, language: str = "", max_entries: int = 200_000):
        super().__init__(language)
        self.max_entries = max_entries
        self._tokens: dict[str, list[str]] = {}

    def word_tokenize(self, text: str) -> list[str]:
        chunks = text.split()  # whitespace as str.isspace() sees it; the C split is 2.3x the regex's speed
        known = self._tokens
        unknown = [c for c in dict.fromkeys(chunks) if c not in known]
        if unknown and len(known) + len(unknown) > self.max_entries:
            known.clear()
            unknown = list(dict.fromkeys(chunks))
        for chunk in unknown:
            known[chunk] = _TOKEN.findall(chunk)
        return list(chain.from_iterable(map(known.__getitem__, chunks)))

    def sent_tokenize(self, text: str) -> list[str]:
        return [s.strip() for s in _SENTENCE.findall(text) if s.strip()]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in _SENTENCE.finditer(text) if m.group().strip()]

    def __reduce__(self):  # pickled into executor tasks: rebuild (empty memo) instead of copying compiled state
        return (ScriptWordTokenizer, (self.language, self.max_entries))


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


class EojeolKiwiTokenizer(WordTokenizer):
    """Kiwi (FineWeb-2's model) per whitespace-delimited word, each eojeol analysed once per process.

    The words of a document are the concatenation of its eojeols' isolated analyses, so they do not depend
    on which documents came before, on the cache's state or on how tasks split the input. The cache holds at
    most ``max_entries`` eojeols (about 200 bytes each) and is emptied when full: Korean eojeol frequencies
    are Zipfian, so the frequent ones are back after a few documents. A document with a run of 20+ digits
    or commas goes to datatrove's whole-document `KiwiTokenizer`, which deletes such runs before Kiwi and
    then cuts words from the original text at the shifted offsets; per eojeol that cannot be reproduced.
    """

    def __init__(self, inner, max_entries: int = 200_000):
        super().__init__(inner.language)
        self.inner, self.max_entries = inner, max_entries
        self._words: dict[str, list[str]] = {}
        self._kiwi, self._kiwi_pid = None, None
        self._forked_kiwis: list = []

    def _analyse(self, eojeols: list[str]) -> None:
        # one Kiwi per process: Kiwi analyses on a thread of its own, which a forked worker does not inherit, so
        # a Kiwi loaded before the fork waits forever in the worker (a 2-worker build after an in-process one hung).
        # The parent's Kiwi is kept, never freed, in the worker: freeing it joins that missing thread (abort).
        if self._kiwi_pid != os.getpid():
            from kiwipiepy import Kiwi

            if self._kiwi is not None:
                self._forked_kiwis.append(self._kiwi)

            # one thread: Kiwi's default worker threads cost ~35 % more CPU per document and share no work here
            self._kiwi = Kiwi(model_type=self.inner.model_type, num_workers=1)
            self._kiwi_pid = os.getpid()
        for eojeol, tokens in zip(eojeols, self._kiwi.tokenize(eojeols)):  # each string analysed on its own
            self._words[eojeol] = strip_strings([eojeol[t.start:t.end] for t in tokens])

    def word_tokenize(self, text: str) -> list[str]:
        if self.inner._preprocess_regex.search(text):
            return self.inner.word_tokenize(text)
        eojeols = text.split()
        known = self._words
        unknown = [e for e in dict.fromkeys(eojeols) if e not in known]
        if unknown and len(known) + len(unknown) > self.max_entries:
            known.clear()  # then this document's known eojeols are analysed again too
            unknown = list(dict.fromkeys(eojeols))
        if unknown:
            self._analyse(unknown)
        words: list[str] = []
        for eojeol in eojeols:
            words += known[eojeol]
        return words

    def sent_tokenize(self, text: str) -> list[str]:
        return self.inner.sent_tokenize(text)

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return self.inner.span_tokenize(text)


_FULL_WIDTH_DIGITS = regex.compile(r"[０-９]+")
SEGMENTERS = ("datatrove", "datatrove_eojeol", "builtin")
# datatrove keys FineWeb-2 used where the bare ISO 639-1 code resolves differently: datatrove's table maps
# "zh" to spaCy's multilingual "xx" tokenizer (no segmentation at all), "cmn_Hani" to spaCy + jieba.
_DATATROVE_KEYS = {"zh": "cmn_Hani"}


@lru_cache(maxsize=None)
def word_tokenizer(language: str, segmenter: str = "datatrove") -> WordTokenizer:
    """The word tokenizer for ``language``: datatrove's per-language choice (FineWeb-2's) or the builtin one."""
    if segmenter == "builtin":
        return ScriptWordTokenizer(language)
    if segmenter not in SEGMENTERS:
        raise UserError(f"segmenter {segmenter!r} is unknown; use one of {', '.join(SEGMENTERS)}")
    try:
        tokenizer = load_word_tokenizer(_DATATROVE_KEYS.get(language, language))
    except (ValueError, ImportError) as e:
        raise UserError(
            f"segmenter {segmenter!r} for {language!r}: {str(e).rstrip('.')}; reinstall polyglot-llama (its "
            "dependencies include the segmenters) or use segmenter: builtin"
        ) from None
    if language == "zh":
        return FullWidthDigitsJoined(tokenizer)
    if segmenter == "datatrove_eojeol" and isinstance(tokenizer, KiwiTokenizer):
        return EojeolKiwiTokenizer(tokenizer)
    return tokenizer
