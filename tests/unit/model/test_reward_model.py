"""Reward model: built from a causal LM, saved/reloaded in HF format, scored at the last non-pad token."""

import shutil

import pytest
import torch
from safetensors.torch import load_file

from polyglot_llama.errors import UserError
from polyglot_llama.model.checkpoint import load_tokenizer, save_checkpoint
from polyglot_llama.model.reward_model import (build_reward_model, encode_conversation, last_token_index, load_reward_model,
                                               pad_sequences, prepare_tokenizer, score, sequence_scores)


@pytest.fixture(scope="module")
def rm_dir(en_model_dir, tmp_path_factory):
    model = build_reward_model(en_model_dir, seed=3)
    tokenizer = load_tokenizer(en_model_dir)
    prepare_tokenizer(model, tokenizer)
    output = tmp_path_factory.mktemp("rm") / "rm"
    save_checkpoint(model, output, tokenizer_dir=en_model_dir)
    return output


def test_built_from_causal_lm_with_scalar_head(en_model_dir):
    model = build_reward_model(en_model_dir)
    assert type(model).__name__ == "LlamaForSequenceClassification"
    assert model.score.weight.shape == (1, model.config.hidden_size) and model.config.num_labels == 1
    base = load_file(str(en_model_dir / "model.safetensors"))
    state = model.state_dict()
    assert "lm_head.weight" not in state
    for name in ("model.embed_tokens.weight", "model.layers.1.mlp.down_proj.weight", "model.norm.weight"):
        assert torch.equal(state[name], base[name])
    # The head initialisation is seeded and leaves the global RNG alone.
    torch.manual_seed(0)
    before = torch.rand(1)
    again = build_reward_model(en_model_dir)
    torch.manual_seed(0)
    assert torch.equal(again.score.weight, model.score.weight) and torch.equal(torch.rand(1), before)
    assert not torch.equal(build_reward_model(en_model_dir, seed=1).score.weight, model.score.weight)


def test_saved_rm_reloads_with_auto_class(rm_dir):
    from transformers import AutoModelForSequenceClassification

    model, tokenizer = load_reward_model(rm_dir)
    auto = AutoModelForSequenceClassification.from_pretrained(str(rm_dir)).eval()
    ids = torch.tensor([encode_conversation("Where does the fog come from?", "From the sea.", tokenizer)])
    ours = sequence_scores(model, ids, torch.ones_like(ids))
    assert torch.allclose(ours, auto(input_ids=ids).logits.squeeze(-1), atol=1e-5)
    assert tokenizer.pad_token_id == model.config.pad_token_id is not None


def test_causal_lm_is_not_a_reward_model(en_model_dir):
    with pytest.raises(UserError, match="not a reward model"):
        load_reward_model(en_model_dir)


def test_last_token_index_left_and_right_padding():
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 1, 1, 0, 0]])
    assert last_token_index(mask).tolist() == [2, 4, 4, 2]


@pytest.mark.parametrize("pad", ["unk", "eos"])
def test_padding_side_does_not_change_scores(rm_dir, pad):
    model, tokenizer = load_reward_model(rm_dir)
    pad_id = tokenizer.unk_token_id if pad == "unk" else tokenizer.eos_token_id
    # With pad == eos every sequence below ends in a token equal to the pad id: HF's "rightmost token that
    # is not pad" would read the wrong position; the attention mask does not.
    sequences = [encode_conversation(p, r, tokenizer) for p, r in [
        ("Tell me about bread.", "Flour, water, salt and patience."),
        ("Hi", "Hello."),
        ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why is the sky blue?"},
          {"role": "assistant", "content": "Scattering."}, {"role": "user", "content": "More?"}], "Short waves scatter more."),
    ]]
    assert all(seq[-1] == tokenizer.eos_token_id for seq in sequences)
    alone = torch.cat([sequence_scores(model, torch.tensor([s]), torch.ones(1, len(s), dtype=torch.long)) for s in sequences])
    with torch.no_grad():
        for side in ("left", "right"):
            ids, mask = pad_sequences(sequences, pad_id, side)
            assert torch.allclose(sequence_scores(model, ids, mask), alone, atol=1e-5), side
    assert len(set(alone.tolist())) == 3  # distinct scores: the test would see a wrong position


def test_score_keeps_input_order_and_batches(rm_dir):
    model, tokenizer = load_reward_model(rm_dir)
    prompts = ["A long question about the harbour and the fishermen who wait there?", "Hi", "Why?"]
    responses = ["They wait for the fog to lift before they sail.", "Hello there.", "Because."]
    batched = score(model, tokenizer, prompts, responses, batch_size=2)
    one_by_one = torch.cat([score(model, tokenizer, [p], [r], batch_size=1) for p, r in zip(prompts, responses)])
    assert batched.shape == (3,) and torch.allclose(batched, one_by_one, atol=1e-5)
    # A string prompt is one user turn in the chat format.
    as_messages = score(model, tokenizer, [[{"role": "user", "content": "Hi"}]], ["Hello there."])
    assert torch.allclose(as_messages, batched[1:2], atol=1e-6)


def test_score_truncates_from_the_left(rm_dir):
    model, tokenizer = load_reward_model(rm_dir)
    full = encode_conversation("word " * 40, "The end of the answer.", tokenizer)
    kept = full[-20:]
    expected = sequence_scores(model, torch.tensor([kept]), torch.ones(1, 20, dtype=torch.long))
    got = score(model, tokenizer, ["word " * 40], ["The end of the answer."], max_length=20)
    assert torch.allclose(got, expected, atol=1e-5)


def test_rm_can_start_from_an_rm(rm_dir, tmp_path):
    copy = tmp_path / "rm"
    shutil.copytree(rm_dir, copy)
    again = build_reward_model(copy)
    original, _ = load_reward_model(rm_dir)
    assert torch.equal(again.score.weight, original.score.weight)


def test_an_empty_sampled_answer_is_scored_not_refused(multi_model_dir, tmp_path):
    from polyglot_llama.model.reward_model import build_reward_model, load_reward_model, score

    model = build_reward_model(multi_model_dir)
    save_checkpoint(model, tmp_path / "rm", tokenizer_dir=multi_model_dir)
    model, tokenizer = load_reward_model(tmp_path / "rm")
    scores = score(model, tokenizer, ["Say something.", "Say something."], ["", "Hello there."])
    assert scores.shape == (2,) and torch.isfinite(scores).all()
    assert scores[0] != scores[1]
