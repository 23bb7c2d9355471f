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
