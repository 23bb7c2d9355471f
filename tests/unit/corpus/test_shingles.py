"""The fast MinHash shingles are datatrove's, element for element, on real text of several scripts."""

from __future__ import annotations

import numpy as np
import pytest
from datatrove.pipeline.dedup import MinhashConfig, MinhashDedupSignature
from datatrove.utils.hashing import HashConfig

from polyglot_test_utils import sample_texts
from polyglot_llama.corpus.shingles import FastMinhashDedupSignature
from polyglot_llama.corpus.words import ScriptWordTokenizer


@pytest.mark.parametrize("n_grams,precision,hash_fc", [(5, 64, "xxhash"), (1, 64, "xxhash"), (3, 32, "xxhash"),
                                                       (5, 64, "sha1")])
def test_same_shingles_as_datatrove(tmp_path, n_grams, precision, hash_fc):
    config = MinhashConfig(n_grams=n_grams, hash_config=HashConfig(precision=precision, hash_fc=hash_fc))
    ours = FastMinhashDedupSignature(str(tmp_path / "a"), config, language=ScriptWordTokenizer())
    theirs = MinhashDedupSignature(str(tmp_path / "b"), config, language=ScriptWordTokenizer())
    texts = [t for lang in ("ko", "ja", "zh", "en", "de", "ru") for t in sample_texts(lang)[:5]]
    texts += ["", "   ", "한 두 세", "one two three four", "a  b\n\nc d e f g, h!"]  # fewer words than n, blanks
    for text in texts:
        expected = theirs.get_shingles(text)
        got = ours.get_shingles(text)
        assert got.dtype == expected.dtype and got.shape == expected.shape, text
        assert np.array_equal(got, expected), text
    assert sum(len(ours.get_shingles(t)) for t in texts) > 1000  # real text, not only the edge cases


def test_korean_shingles_are_syllable_ngrams(tmp_path):
    """8 syllables, 5-grams: 4 shingles (one per 5 syllables), not 16 of 5 jamo each from the NFD text."""
    step = FastMinhashDedupSignature(str(tmp_path), MinhashConfig(n_grams=5), language=ScriptWordTokenizer())
    assert step.get_shingles("대한민국 헌법 전문").shape == (4, 1)


@pytest.mark.parametrize("precision,num_buckets,hashes_per_bucket", [(64, 14, 8), (32, 14, 8), (64, 3, 5)])
def test_same_signatures_as_datatrove(tmp_path, precision, num_buckets, hashes_per_bucket):
    config = MinhashConfig(n_grams=5, num_buckets=num_buckets, hashes_per_bucket=hashes_per_bucket,
                           hash_config=HashConfig(precision=precision))
    ours = FastMinhashDedupSignature(str(tmp_path / "a"), config, language=ScriptWordTokenizer())
    theirs = MinhashDedupSignature(str(tmp_path / "b"), config, language=ScriptWordTokenizer())
    texts = [t for lang in ("ko", "zh", "en") for t in sample_texts(lang)[:4]]
    texts.append(" ".join(sample_texts("ko")[:12]))  # more shingles than two blocks of 512
    rng = np.random.default_rng(0)
    arrays = [theirs.get_shingles(t) for t in texts]
    # shingles near 2**64 and 2**61: the wrapping products and the modulus's carry cases
    arrays.append(np.array([2**64 - 1, 2**61 - 1, 2**61, 2**62 + 5, 0, 1], dtype=np.uint64).reshape(-1, 1))
    arrays.append(rng.integers(0, 2**64 - 1, size=(600, 1), dtype=np.uint64))
    # a shingle that permutation i maps to 2**62 - 1 before the modulus (1 after it): the rare case where the
    # shifted sum reaches the prime and one subtraction is needed
    multipliers, offsets = (p[0].tolist() for p in theirs.parameters)
    i = next(i for i, a in enumerate(multipliers) if a % 2)  # an odd multiplier is invertible modulo 2**64
    arrays.append(np.array([(2**62 - 1 - offsets[i]) * pow(multipliers[i], -1, 2**64) % 2**64], dtype=np.uint64).reshape(-1, 1))
    assert max(len(a) for a in arrays) > 1024  # three blocks
    for shingles in arrays:
        assert ours.get_signature(shingles) == theirs.get_signature(shingles)
