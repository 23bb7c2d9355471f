import math

import torch

from polyglot_llama.train.losses import IGNORE_INDEX, causal_lm_loss, token_logprobs


def test_causal_lm_loss_matches_hand_computation():
    # Vocabulary of 2, uniform logits at position 0, confident at position 1: loss is averaged over the
    # two counted targets (labels[1] and labels[2]); labels[0] is never a target.
    logits = torch.tensor([[[0.0, 0.0], [0.0, math.log(3.0)], [5.0, 5.0]]])
    labels = torch.tensor([[7, 1, 1]])
    loss, n = causal_lm_loss(logits, labels)
    expected = (math.log(2.0) + -math.log(3.0 / 4.0)) / 2
    assert n == 2 and abs(float(loss) - expected) < 1e-6


def test_ignored_positions_do_not_count():
    logits = torch.randn(1, 4, 5)
    labels = torch.tensor([[0, IGNORE_INDEX, 3, IGNORE_INDEX]])
    loss, n = causal_lm_loss(logits, labels)
    assert n == 1
    assert torch.isclose(loss, -torch.log_softmax(logits[0, 1], -1)[3])


def test_token_logprobs_shape_and_values():
    logits = torch.randn(2, 3, 4)
    ids = torch.tensor([[0, 1, 2], [3, 2, 1]])
    lp = token_logprobs(logits, ids)
    assert lp.shape == (2, 2)
    assert torch.isclose(lp[1, 0], torch.log_softmax(logits[1, 0], -1)[2])
