"""LanguageModel: continuation log-likelihoods and rolling NLL against a hand computation."""

import math

import pytest

from eval_helpers import token_logprobs


def test_loglikelihoods_match_hand_computation_across_padded_batches(tiny_checkpoint):
    lm = tiny_checkpoint.language_model()
    requests = [
        lm.split_continuation("The capital of France is", " Paris"),
        lm.split_continuation("서울은 한국의", " 수도입니다"),
        lm.split_continuation("Das Wetter ist heute", " schön und warm"),
        lm.split_continuation("猫", "在睡觉"),
    ]
    got = lm.loglikelihoods(requests)  # batch_size 3: two batches, right padding
    for (ctx, cont), value in zip(requests, got):
        assert cont, "every continuation keeps at least one token"
        expected = sum(token_logprobs(lm.model, ctx + cont)[len(ctx) - 1:])
        assert value == pytest.approx(expected, abs=1e-4)


def test_split_continuation_tokenizes_the_joined_text(tiny_checkpoint):
    lm = tiny_checkpoint.language_model()
    ctx, cont = lm.split_continuation("Question: 2 + 2?\nAnswer:", " 4")
    assert ctx + cont == lm.encode("Question: 2 + 2?\nAnswer: 4")
    assert ctx[0] == lm.tokenizer.bos_token_id


@pytest.mark.parametrize("max_length,stride", [(0, 0), (8, 3)])
def test_rolling_nll_predicts_each_token_once(tiny_checkpoint, max_length, stride):
    lm = tiny_checkpoint.language_model()
    ids = lm.encode("A postcard travels farther than most people think, carried by truck, plane and bicycle.")
    saved = lm.max_length
    lm.max_length = max_length or saved
    try:
        (nll, n), = lm.rolling_nll([ids], stride=stride)
    finally:
        lm.max_length = saved
    assert n == len(ids) - 1
    if not max_length:  # one window: the plain sequence NLL
        assert nll == pytest.approx(-sum(token_logprobs(lm.model, ids)), abs=1e-3)
    else:  # windows of 3 predicted tokens, each seeing at most 8 tokens in all
        expected = 0.0
        for begin in range(1, len(ids), stride):
            end = min(begin + stride, len(ids))
            window = ids[max(0, end - max_length):end]
            expected -= sum(token_logprobs(lm.model, window)[-(end - begin):])
        assert nll == pytest.approx(expected, abs=1e-3)
        assert math.isfinite(nll)
