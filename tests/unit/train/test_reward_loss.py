"""The margin ranking loss −log σ(r_c − r_r − m(strength)) against hand-computed values, for each table."""

import math

import pytest
import torch

from polyglot_llama.train.losses import REWARD_MARGINS, reward_margin_loss

STRENGTHS = ["significantly_better", "better", "slightly_better", "negligibly_better"]


def softplus(x: float) -> float:
    """−log σ(−x) = log(1 + eˣ), written out by hand."""
    return math.log(1.0 + math.exp(x))


def test_margin_tables_are_the_papers():
    assert [REWARD_MARGINS["small"][s] for s in STRENGTHS] == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0])
    assert [REWARD_MARGINS["large"][s] for s in STRENGTHS] == [3.0, 2.0, 1.0, 0.0]
    assert [REWARD_MARGINS["none"][s] for s in STRENGTHS] == [0.0, 0.0, 0.0, 0.0]


def test_no_margin_hand_computed():
    chosen = torch.tensor([1.0, 0.0, 0.5])
    rejected = torch.tensor([0.0, 2.0, 0.5])
    # gaps 1, −2, 0 → log(1+e^−1) = 0.313262, log(1+e^2) = 2.126928, log 2 = 0.693147
    expected = (0.31326169 + 2.12692801 + 0.69314718) / 3
    assert float(reward_margin_loss(chosen, rejected)) == pytest.approx(expected, abs=1e-6)
    assert float(reward_margin_loss(chosen, rejected, torch.zeros(3))) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("table", ["small", "large"])
def test_gap_equal_to_margin_costs_log_two(table):
    # A pair whose reward gap equals its margin sits exactly on the decision boundary: loss log 2 each.
    margins = torch.tensor([REWARD_MARGINS[table][s] for s in STRENGTHS])
    rejected = torch.tensor([0.3, -1.0, 2.0, 0.0])
    loss = reward_margin_loss(rejected + margins, rejected, margins)
    assert float(loss) == pytest.approx(math.log(2.0), abs=1e-6)


@pytest.mark.parametrize("table, expected_terms", [
    ("small", [softplus(1.0), softplus(2 / 3), softplus(1 / 3), math.log(2.0)]),   # 1.313262, 1.075766, 0.877588, 0.693147
    ("large", [softplus(3.0), softplus(2.0), softplus(1.0), math.log(2.0)]),       # 3.048587, 2.126928, 1.313262, 0.693147
])
def test_equal_rewards_pay_the_margin(table, expected_terms):
    margins = torch.tensor([REWARD_MARGINS[table][s] for s in STRENGTHS])
    scores = torch.tensor([0.7, 0.7, 0.7, 0.7])
    loss = reward_margin_loss(scores, scores.clone(), margins)
    assert float(loss) == pytest.approx(sum(expected_terms) / 4, abs=1e-6)


def test_large_margin_hand_computed_mixed_batch():
    # significantly better with gap 4 (margin 3): log(1+e^−1); slightly better with gap 0.5 (margin 1): log(1+e^0.5)
    chosen = torch.tensor([4.0, 1.0])
    rejected = torch.tensor([0.0, 0.5])
    margins = torch.tensor([REWARD_MARGINS["large"]["significantly_better"], REWARD_MARGINS["large"]["slightly_better"]])
    expected = (0.31326169 + 0.97407698) / 2
    assert float(reward_margin_loss(chosen, rejected, margins)) == pytest.approx(expected, abs=1e-6)


def test_gradient_and_stability():
    chosen = torch.tensor([0.0, -200.0], requires_grad=True)
    rejected = torch.tensor([0.0, 0.0])
    loss = reward_margin_loss(chosen, rejected)
    loss.backward()
    value = loss.item()
    assert math.isfinite(value) and value == pytest.approx((math.log(2.0) + 200.0) / 2, abs=1e-4)
    # d/dr_c of −log σ(gap)/B = −(1 − σ(gap))/B: −0.25 at gap 0, −0.5 at gap −200 (B = 2)
    assert chosen.grad.tolist() == pytest.approx([-0.25, -0.5], abs=1e-6)


def test_half_precision_inputs_give_fp32_loss():
    loss = reward_margin_loss(torch.tensor([1.0], dtype=torch.bfloat16), torch.tensor([0.0], dtype=torch.bfloat16),
                              torch.tensor([1.0]))
    assert loss.dtype == torch.float32 and float(loss) == pytest.approx(math.log(2.0), abs=1e-6)


def test_reward_step_scores_chosen_and_rejected_in_one_pass(en_model_dir):
    from polyglot_llama.model.checkpoint import load_tokenizer
    from polyglot_llama.model.reward_model import build_reward_model, encode_conversation, prepare_tokenizer, sequence_scores
    from polyglot_llama.train.reward import reward_step
    from polyglot_llama.train.reward_data import collate_pairs

    model = build_reward_model(en_model_dir, seed=1)
    tokenizer = load_tokenizer(en_model_dir)
    prepare_tokenizer(model, tokenizer)
    texts = [("Is the fog thick?", "Yes, very thick this morning.", "No.", "large", "better"),
             ("Bread?", "Flour, water, salt.", "Buy some bread at the shop.", "large", "slightly_better")]
    examples = [{"chosen_ids": encode_conversation(p, c, tokenizer), "rejected_ids": encode_conversation(p, r, tokenizer),
                 "margin": REWARD_MARGINS[table][strength]} for p, c, r, table, strength in texts]
    with torch.no_grad():
        out = reward_step(model, collate_pairs(examples, tokenizer.pad_token_id))
        alone = [float(sequence_scores(model, torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long)))
                 for ids in (examples[0]["chosen_ids"], examples[1]["chosen_ids"], examples[0]["rejected_ids"], examples[1]["rejected_ids"])]
    gaps = [alone[0] - alone[2] - 2.0, alone[1] - alone[3] - 1.0]
    expected = sum(softplus(-g) for g in gaps) / 2
    assert float(out.loss) == pytest.approx(expected, abs=1e-5) and out.n_tokens == 2
    assert out.metrics["accuracy"] == sum(a > b for a, b in zip(alone[:2], alone[2:])) / 2
