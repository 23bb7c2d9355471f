"""Gopher's repetition filter, the same decisions as datatrove's `GopherRepetitionFilter` at a fraction of its time.

Profiling the Korean recipe showed half of the CPU time in datatrove's pure-Python n-gram loops: for each
n it builds every n-gram with ``" ".join`` / ``"".join`` inside a Python loop and counts them one by one.
Here the n-gram strings are slices of one joined string (C-level list comprehensions), the top n-gram
is counted by `collections.Counter`'s C counter, and the greedy duplicate scan for n = 5..10 only runs
when some n-gram string occurs twice at all (if every one is unique, datatrove's scan finds nothing: 0
repeated characters). Keys are the very strings datatrove compares, so ties and the ambiguity of
``"".join`` (``["ab", "c"]`` and ``["a", "bc"]`` are the same 2-gram for datatrove) come out the same;
`tests/unit/corpus/test_repetition.py` checks decision and reason against datatrove's filter.
"""

from __future__ import annotations

from collections import Counter
from itertools import accumulate

from datatrove.data import Document
from datatrove.pipeline.filters.gopher_repetition_filter import GopherRepetitionFilter, find_duplicates
from datatrove.utils.text import split_into_words


def _repeated_chars(keys: list[str], n: int) -> int:
    """datatrove's `find_all_duplicate` on precomputed n-gram strings: greedy, skipping n words after a repeat."""
    if len(set(keys)) == len(keys):
        return 0
    seen: set[str] = set()
    repeated, idx, end = 0, 0, len(keys)
    while idx < end:
        key = keys[idx]
        if key in seen:
            repeated += len(key)
            idx += n
        else:
            seen.add(key)
            idx += 1
    return repeated


class FastGopherRepetitionFilter(GopherRepetitionFilter):
    """Drop-in for datatrove's `GopherRepetitionFilter` (same arguments, same (False, reason) results)."""

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        text = doc.text
        if not text:
            return False, "empty"
        size = len(text)
        if self.dup_para_frac or self.dup_para_char_frac:  # both 0 in FineWeb-2: datatrove's result is unused
            paragraphs = self.paragraph_exp.split(text.strip())
            duplicates, chars = find_duplicates(paragraphs)
            if self.dup_para_frac and duplicates / len(paragraphs) > self.dup_para_frac:
                return False, "dup_para_frac"
            if self.dup_para_char_frac and chars / size > self.dup_para_char_frac:
                return False, "dup_para_char_frac"
        if self.dup_line_frac or self.dup_line_char_frac:
            lines = self._line_splitter.split(text)
            duplicates, chars = find_duplicates(lines)
            if self.dup_line_frac and duplicates / len(lines) > self.dup_line_frac:
                return False, "dup_line_frac"
            if self.dup_line_char_frac and chars / size > self.dup_line_char_frac:
                return False, "dup_line_char_frac"

        words = split_into_words(text, self.language)
        # " ".join(words[i:i+n]) == spaced[starts[i]:starts[i+n]-1]: word i starts at starts[i] in `spaced`
        spaced = " ".join(words)
        starts = list(accumulate(map((1).__add__, map(len, words)), initial=0))  # len(w) + 1 per word, in C
        for n, n_frac in self.top_n_grams:
            keys = [spaced[a:b - 1] for a, b in zip(starts, starts[n:])]
            if not keys:
                continue
            top, count = Counter(keys).most_common(1)[0]  # first of the most frequent, as datatrove's loop
            if len(top) * count / size > n_frac:
                return False, f"top_{n}_gram"

        # "".join(words[i:i+n]) == joined[offsets[i]:offsets[i+n]]
        joined = "".join(words)
        offsets = list(accumulate(map(len, words), initial=0))
        for n, n_frac in self.dup_n_grams:
            keys = [joined[a:b] for a, b in zip(offsets, offsets[n:])]
            if _repeated_chars(keys, n) / size > n_frac:
                return False, f"duplicated_{n}_n_grams"
        return True
