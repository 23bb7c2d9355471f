"""Gopher's quality filter, the same decisions as datatrove's `GopherQualityFilter` without its per-character loops.

After the repetition filter and simplification were made cheap, profiling the Korean recipe put a third of
the remaining Python time in two expressions of datatrove's filter that look at every character of every
word through a Python generator: "has a character outside ``PUNCTUATION_SET``" and "has a letter"
(``str.isalpha``). Here the first is ``word.strip(punctuation)`` (empty exactly when every character is
punctuation; a strip against 281 characters, so it is memoised too) and the second is memoised per distinct
word (`functools.lru_cache`, C-level hits through ``filter``/``map``; words are Zipf-distributed). The mean word length is summed in Python ints, which equals numpy's float64 mean for
any realistic count (integer sums below 2**53 are exact); an empty list gives NaN, as numpy does.
`tests/unit/corpus/test_gopher_quality.py` checks decision and reason against datatrove's filter.
"""

from __future__ import annotations

from functools import lru_cache

from datatrove.data import Document
from datatrove.pipeline.filters.gopher_quality_filter import GopherQualityFilter
from datatrove.utils.text import PUNCTUATION_SET, split_into_words

# str.strip takes characters; datatrove tests one character at a time, so longer entries never match
_PUNCTUATION = "".join(p for p in PUNCTUATION_SET if len(p) == 1)


@lru_cache(maxsize=1 << 17)
def _has_letter(word: str) -> bool:
    return any(c.isalpha() for c in word)


@lru_cache(maxsize=1 << 17)
def _not_only_punctuation(word: str) -> bool:
    return bool(word.strip(_PUNCTUATION))


class FastGopherQualityFilter(GopherQualityFilter):
    """Drop-in for datatrove's `GopherQualityFilter` (same arguments, same (False, reason) results)."""

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        text = doc.text
        words = split_into_words(text, self.language)
        n_words = len(words)
        non_symbol_words = list(filter(_not_only_punctuation, words))
        n_non_symbol = len(non_symbol_words)
        if self.min_doc_words and n_non_symbol < self.min_doc_words:
            return False, "gopher_short_doc"
        if self.max_doc_words and n_non_symbol > self.max_doc_words:
            return False, "gopher_long_doc"

        mean_length = sum(map(len, non_symbol_words)) / n_non_symbol if n_non_symbol else float("nan")
        if self.min_avg_word_length and mean_length < self.min_avg_word_length:
            return False, "gopher_below_avg_threshold"
        if self.max_avg_word_length and mean_length > self.max_avg_word_length:
            return False, "gopher_above_avg_threshold"

        if self.max_symbol_word_ratio and text.count("#") / n_words > self.max_symbol_word_ratio:
            return False, "gopher_too_many_hashes"
        if self.max_symbol_word_ratio and (text.count("...") + text.count("…")) / n_words > self.max_symbol_word_ratio:
            return False, "gopher_too_many_ellipsis"

        lines = text.splitlines()
        if self.max_bullet_lines_ratio and (
            sum(line.lstrip().startswith(("•", "-")) for line in lines) / len(lines) > self.max_bullet_lines_ratio
        ):
            return False, "gopher_too_many_bullets"
        if self.max_ellipsis_lines_ratio and (
            sum(line.rstrip().endswith(("...", "…")) for line in lines) / len(lines) > self.max_ellipsis_lines_ratio
        ):
            return False, "gopher_too_many_end_ellipsis"

        if self.max_non_alpha_words_ratio and sum(map(_has_letter, words)) / n_words < self.max_non_alpha_words_ratio:
            return False, "gopher_below_alpha_threshold"

        if self.min_stop_words and len(self.stop_words.intersection(words)) < self.min_stop_words:
            return False, "gopher_enough_stop_words"
        return True
