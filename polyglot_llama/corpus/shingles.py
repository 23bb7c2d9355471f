"""MinHash signatures with datatrove's shingles and permutations, computed without its per-n-gram Python work.

datatrove's `MinhashDedupSignature.get_shingles` builds every word n-gram as a tuple (``itertools.tee``),
joins it with ``" ".join`` and hashes it through a Python wrapper around xxhash, one Python call per
n-gram (about one per character for Hangul and Han, which the shingle splitter cuts per syllable/character).
Profiling the recipe without Kiwi put a fifth of the CPU time there. Here the n-gram strings are slices
of one space-joined string (word i starts at ``starts[i]``: ``" ".join(words[i:i+n]) ==
spaced[starts[i]:starts[i+n]-1]``) and the hash function is xxhash's C function itself, and the text is simplified by `simplify.simplify_text`
(datatrove's result, its diacritics step in C), so the shingle
array is the same, element for element (`tests/unit/corpus/test_shingles.py` checks it against datatrove).

The signature is datatrove's ``min over shingles of (a * shingle + b) mod (2**61 - 1)`` for each of the
num_buckets * hashes_per_bucket permutations (a, b), products wrapping at 2**64 as in its uint64 numpy code.
datatrove computes it on the whole (shingles x permutations) array at once (600 x 112 x 8 bytes = 0.5 MB
per temporary for a 1,000-character Korean document), which runs from main memory; here it goes 512
shingles at a time (460 KB, within the CPU's cache), and ``x mod (2**61 - 1)`` is two shifts and adds
instead of a 64-bit division: with x = q * 2**61 + r, x = q + r (mod 2**61 - 1) and q + r < 2 * (2**61 - 1).
The same signatures, about twice as fast.
"""

from __future__ import annotations

from itertools import accumulate

import numpy as np
import xxhash
from datatrove.pipeline.dedup import MinhashDedupSignature

from .simplify import simplify_text

# datatrove's xxhash32/xxhash64 are one-line wrappers around these
_C_HASHES = {32: xxhash.xxh32_intdigest, 64: xxhash.xxh64_intdigest}
_MERSENNE_PRIME = np.uint64((1 << 61) - 1)  # datatrove's modulus (minhash._mersenne_prime)
_SHINGLE_BLOCK = 512  # rows of the (shingles x permutations) array per step: 512 x 112 x 8 bytes = 460 KB


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

    def get_signature(self, shingles: np.ndarray) -> list[list[int]]:
        """datatrove's signature of ``shingles`` ((N, 1) uint64): per bucket, the list of its hashes_per_bucket minima."""
        a, b = self.parameters  # (1, num_hashes) uint64 each
        mask = np.uint64(self.config.hash_config.max) if self.config.hash_config.precision == 32 else None
        minima = np.full(a.shape[1], np.iinfo(np.uint64).max, dtype=np.uint64)
        for start in range(0, len(shingles), _SHINGLE_BLOCK):
            x = shingles[start:start + _SHINGLE_BLOCK] * a  # wraps at 2**64, as datatrove's
            x += b
            high = x >> np.uint64(61)
            x &= _MERSENNE_PRIME
            x += high  # < 2 * (2**61 - 1): x mod p is x - p where x >= p, x elsewhere
            # x >= p needs a low part within 7 of p (about 1 value in 2**58): one read-only max finds out, and
            # the subtraction (two more passes, a new array) runs only then
            if x.max() >= _MERSENNE_PRIME:
                np.minimum(x, x - _MERSENNE_PRIME, out=x)  # x - p wraps to a larger number exactly when x < p
            if mask is not None:  # datatrove keeps the low 32 bits of each value, before the minimum
                x &= mask
            np.minimum(minima, x.min(axis=0), out=minima)
        # one list per bucket, as datatrove's np.split + tolist per part, in one C call
        return minima.astype(self.config.hash_config.np_dtype).reshape(self.config.num_buckets, -1).tolist()
