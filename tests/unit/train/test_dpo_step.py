"""The DPO step's wiring (answer log-probs, cached reference, offsets, token counts) on a fixed-logit model."""

import math
from types import SimpleNamespace

import pytest
import torch

from polyglot_llama.train.dpo import dpo_step


class FixedLogits(torch.nn.Module):
    """Every position predicts token 0 with probability 1/4 and token 1 with 3/4."""

    def __init__(self, rows: int, length: int):
        super().__init__()
        self.logits = torch.nn.Parameter(torch.tensor([0.0, math.log(3.0)]).repeat(rows, length, 1))

    def forward(self, input_ids, attention_mask, use_cache):
        return SimpleNamespace(logits=self.logits)


# One pair: the chosen row scores tokens 1, 1 (log p = 2·log 3/4), the rejected row token 0 (log 1/4).
BATCH = {"input_ids": torch.zeros(2, 3, dtype=torch.long), "attention_mask": torch.ones(2, 3, dtype=torch.long),
         "labels": torch.tensor([[-100, 1, 1], [-100, 0, -100]]), "offset": torch.tensor([0.5]),
         "ref_chosen": torch.tensor([-1.0]), "ref_rejected": torch.tensor([-1.0])}
CHOSEN, REJECTED = 2 * math.log(0.75), math.log(0.25)


def softplus(x: float) -> float:
    return math.log(1.0 + math.exp(x))


def step(loss, **kw):
    args = dict(loss=loss, beta=1.0, label_smoothing=0.0, tau=0.25, offset_scale=2.0, **kw)
    return dpo_step(FixedLogits(2, 3), BATCH, **args)


def test_sigmoid_step():
    h = (CHOSEN + 1.0) - (REJECTED + 1.0)  # log(9/4)
    out = step("sigmoid")
    assert out.loss.item() == pytest.approx(softplus(-h), abs=1e-6) and out.n_tokens == 1
    assert out.metrics["reward_margin"] == pytest.approx(h, abs=1e-6) and out.metrics["reward_accuracy"] == 1.0
    assert out.metrics["chosen_logp"] == pytest.approx(CHOSEN, abs=1e-6)
    assert out.metrics["rejected_reward"] == pytest.approx(REJECTED + 1.0, abs=1e-6)


def test_odpo_step_subtracts_the_scaled_offset():
    h = (CHOSEN + 1.0) - (REJECTED + 1.0)
    assert step("odpo").loss.item() == pytest.approx(softplus(-(h - 2.0 * 0.5)), abs=1e-6)
    assert step("odpo").loss.item() > step("sigmoid").loss.item()


def test_ipo_step_averages_over_each_answers_tokens():
    h = (CHOSEN + 1.0) / 2 - (REJECTED + 1.0) / 1  # chosen has 2 answer tokens, rejected 1
    assert step("ipo").loss.item() == pytest.approx((h - 1 / (2 * 0.25)) ** 2, abs=1e-6)
