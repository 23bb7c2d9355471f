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

import numpy as np
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


_BASE = 0x9E3779B97F4A7C15  # odd, so invertible modulo 2**64
_POWERS = np.ones(1, dtype=np.uint64)  # _BASE**t mod 2**64 for t < len(_POWERS)
_INVERSE_POWERS = np.ones(1, dtype=np.uint64)  # _BASE**-t mod 2**64


def _powers(length: int) -> tuple[np.ndarray, np.ndarray]:
    """_BASE**t and _BASE**-t (mod 2**64) for t <= length, grown on demand (numpy's uint64 products wrap)."""
    global _POWERS, _INVERSE_POWERS
    if len(_POWERS) <= length:
        size = max(length + 1, 2 * len(_POWERS))
        one = np.ones(1, dtype=np.uint64)  # (a Python int would turn the concatenation into float64)
        _POWERS = np.concatenate((one, np.cumprod(np.full(size - 1, _BASE, dtype=np.uint64))))
        _INVERSE_POWERS = np.concatenate((one, np.cumprod(np.full(size - 1, pow(_BASE, -1, 2**64), dtype=np.uint64))))
    return _POWERS, _INVERSE_POWERS


class _NgramFingerprints:
    """Polynomial hashes (mod 2**64) of ``"".join(words[i:i + n])`` for every i and any n, from one prefix sum.

    Equal strings get equal hashes, so n-gram strings whose hashes are all distinct are all distinct: then
    datatrove's duplicate scan finds nothing and the strings need not be built. Distinct strings may share a
    hash (then the exact scan runs), which costs time, never a different decision.
    """

    def __init__(self, joined: str, offsets: list[int]):
        codes = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)  # one per character
        powers, inverse = _powers(len(codes))
        prefix = np.zeros(len(codes) + 1, dtype=np.uint64)  # prefix[k] = sum of codes[t] * B**t for t < k
        np.cumsum(codes * powers[:len(codes)], out=prefix[1:])
        starts = np.array(offsets, dtype=np.int64)
        self._prefix_at = prefix[starts]  # at word boundaries
        self._unshift = inverse[starts]  # B**-offset: the hash of a slice no longer depends on where it starts

    def may_repeat(self, n: int) -> bool:
        """False when the n-gram strings are certainly all distinct."""
        count = len(self._prefix_at) - n  # n-grams in the document
        if count < 2:
            return False
        hashes = (self._prefix_at[n:] - self._prefix_at[:count]) * self._unshift[:count]
        hashes.sort()
        return bool((hashes[1:] == hashes[:-1]).any())


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
        fingerprints = _NgramFingerprints(joined, offsets)
        for n, n_frac in self.dup_n_grams:
            if n_frac >= 0 and not fingerprints.may_repeat(n):
                continue  # all n-gram strings distinct: datatrove's scan counts 0 repeated characters
            keys = [joined[a:b] for a, b in zip(offsets, offsets[n:])]
            if _repeated_chars(keys, n) / size > n_frac:
                return False, f"duplicated_{n}_n_grams"
        return True
