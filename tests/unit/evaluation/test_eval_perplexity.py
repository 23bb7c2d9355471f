"""Perplexity and bits per byte against a hand computation on fixed documents."""

import math

import pytest
from eval_helpers import token_logprobs, write_jsonl

from polyglot_llama.evaluation.data import DataSpec
from polyglot_llama.evaluation.perplexity import PerplexityTask, perplexity_metrics
from polyglot_llama.io import RejectCounter

DOCS = [
    {"lang": "en", "text": "The library opens at nine."},
    {"lang": "en", "text": "Tomatoes grow best in the sun."},
    {"lang": "ko", "text": "도서관은 아홉 시에 문을 엽니다."},
    {"text": "no language field"},
    {"lang": "de", "body": "wrong column"},
]


def test_perplexity_and_bits_per_byte_match_hand_computation(tmp_path, tiny_checkpoint):
    data = write_jsonl(tmp_path / "docs.jsonl", DOCS)
    task = PerplexityTask(name="ppl", data=DataSpec(files=[str(data)], languages=["en", "ko", "ja"]))
    rejects = RejectCounter()
    result = task.evaluate(tiny_checkpoint, rejects)["languages"]

    lm = tiny_checkpoint.language_model()
    for lang in ("en", "ko"):
        texts = [d["text"] for d in DOCS if d.get("lang") == lang]
        nll = sum(-sum(token_logprobs(lm.model, lm.encode(t))) for t in texts)
        tokens = sum(len(lm.encode(t)) - 1 for t in texts)  # BOS is context, never predicted
        n_bytes = sum(len(t.encode("utf-8")) for t in texts)
        got = result[lang]
        assert got["bits_per_byte"] == pytest.approx(nll / n_bytes / math.log(2), rel=1e-5)
        assert got["perplexity"] == pytest.approx(math.exp(nll / tokens), rel=1e-5)
        assert (got["tokens"], got["bytes"], got["n"]) == (tokens, n_bytes, len(texts))
        low, high = got["ci95"]  # bootstrap over documents: the bounds are documents' own ratios or mixes of them
        ratios = [-sum(token_logprobs(lm.model, lm.encode(t))) / len(t.encode()) / math.log(2) for t in texts]
        assert min(ratios) - 1e-4 <= low <= got["bits_per_byte"] <= high <= max(ratios) + 1e-4
    # Korean UTF-8 is 3 bytes per syllable: bytes count UTF-8, not characters.
    assert result["ko"]["bytes"] == len("도서관은 아홉 시에 문을 엽니다.".encode())
    assert "ja" not in result
    assert rejects.by_reason() == {
        "missing or invalid language in 'lang'": 1,
        "missing column 'text'": 1,
        "language 'ja' has no examples": 1,
    }


def test_perplexity_metrics_units():
    # 10 tokens, total NLL 10 ln 2 nats over 5 bytes: perplexity 2, 2 bits per byte.
    m = perplexity_metrics(10 * math.log(2), 10, 5, 1)
    assert m["perplexity"] == pytest.approx(2.0)
    assert m["bits_per_byte"] == pytest.approx(2.0)
    assert m["tokens_per_byte"] == pytest.approx(2.0)
