"""MinHash signatures with datatrove's shingles, computed without its per-n-gram Python work.

datatrove's `MinhashDedupSignature.get_shingles` builds every word n-gram as a tuple (``itertools.tee``),
joins it with ``" ".join`` and hashes it through a Python wrapper around xxhash, one Python call per
n-gram (about one per character for Hangul and Han, which the shingle splitter cuts per character).
Profiling the recipe without Kiwi put a fifth of the CPU time there. Here the n-gram strings are slices
of one space-joined string (word i starts at ``starts[i]``: ``" ".join(words[i:i+n]) ==
spaced[starts[i]:starts[i+n]-1]``) and the hash function is xxhash's C function itself, and the text is simplified by `simplify.simplify_text`
(datatrove's result, its diacritics step in C), so the shingle
array is the same, element for element (`tests/unit/corpus/test_shingles.py` checks it against datatrove).
"""

from __future__ import annotations

from itertools import accumulate

import numpy as np
import xxhash
from datatrove.pipeline.dedup import MinhashDedupSignature

from .simplify import simplify_text

# datatrove's xxhash32/xxhash64 are one-line wrappers around these
_C_HASHES = {32: xxhash.xxh32_intdigest, 64: xxhash.xxh64_intdigest}


class FastMinhashDedupSignature(MinhashDedupSignature):
    """Drop-in for datatrove's `MinhashDedupSignature` (same arguments, same signatures)."""

    def get_shingles(self, text: str) -> np.ndarray:
        hash_config = self.config.hash_config
        hash_fn = _C_HASHES[hash_config.precision] if hash_config.hash_fc == "xxhash" else self._hash_func
        words = self.word_tokenizer.word_tokenize(simplify_text(text, self.config.norm_config))
        spaced = " ".join(words)
        starts = list(accumulate(map((1).__add__, map(len, words)), initial=0))  # len(w) + 1, without a Python loop
        keys = [spaced[a:b - 1] for a, b in zip(starts, starts[self.config.n_grams:])]
        return np.fromiter(map(hash_fn, keys), dtype=np.uint64, count=len(keys)).reshape((-1, 1))
