"""Scoring conditions as the tokenizer encodes by default, and shared-prefix multiple choice equals full scoring."""

import json
import shutil

import pytest
from eval_helpers import token_logprobs

from polyglot_llama.evaluation.checkpoints import Checkpoint
from polyglot_llama.evaluation.lm import Runtime

PROMPTS = [
    ("Which of these is a fruit?\nAnswer:", [" apple", " chair", " a very long car with four doors"]),
    ("다음 중 과일은 무엇입니까?\n답:", [" 의자", " 사과", " 자동차", " 신발"]),
    ("Das Wetter ist heute", [" schön", " kalt und nass"]),
    ("A", [" b", " c"]),  # a context of one or two tokens
]


@pytest.fixture(scope="module")
def no_bos_checkpoint(tmp_path_factory, multi_model_dir) -> Checkpoint:
    """The tiny model with a tokenizer that adds no BOS by default (as GPT-2 and SmolLM2 tokenizers do)."""
    out = tmp_path_factory.mktemp("no_bos") / "model"
    shutil.copytree(multi_model_dir, out)
    spec = json.loads((out / "tokenizer.json").read_text())
    spec["post_processor"] = None
    (out / "tokenizer.json").write_text(json.dumps(spec))
    config_file = out / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config["add_bos_token"] = False
    config_file.write_text(json.dumps(config))
    return Checkpoint(str(out), "no_bos", Runtime(device="cpu", dtype="float32", batch_size=3))


def test_no_bos_is_forced_where_the_tokenizer_adds_none(no_bos_checkpoint, tiny_checkpoint):
    plain = no_bos_checkpoint.language_model()
    bos = plain.tokenizer.bos_token_id
    text = "The library opens at nine."
    assert plain.encode(text) == plain.tokenizer(text)["input_ids"]
    assert bos not in plain.encode(text)
    ctx, _ = plain.split_continuation("Question: 2 + 2?\nAnswer:", " 4")
    assert ctx[0] != bos
    # The Llama-2-style tokenizer of the fixtures does add BOS by default, and so does scoring with it.
    llama = tiny_checkpoint.language_model()
    assert llama.encode(text)[0] == bos and llama.encode(text)[1:] == plain.encode(text)


def test_split_moves_trailing_spaces_and_cuts_after_the_context_tokens(tiny_checkpoint):
    lm = tiny_checkpoint.language_model()
    tok = lm.tokenizer
    ctx, cont = lm.split_continuation("Question: 2 + 2?\nAnswer: ", "4")
    # Hand-built: the context without its trailing space, then the joined text's remaining tokens.
    expected_ctx = [tok.bos_token_id] + tok("Question: 2 + 2?\nAnswer:", add_special_tokens=False)["input_ids"]
    whole = [tok.bos_token_id] + tok("Question: 2 + 2?\nAnswer: 4", add_special_tokens=False)["input_ids"]
    assert ctx == expected_ctx
    assert cont == whole[len(expected_ctx):] and cont


@pytest.mark.parametrize("which", ["tiny", "no_bos"])
def test_shared_prefix_scores_equal_full_scoring(which, tiny_checkpoint, no_bos_checkpoint):
    lm = (tiny_checkpoint if which == "tiny" else no_bos_checkpoint).language_model()
    items = []
    for prompt, choices in PROMPTS:
        pairs = [lm.split_continuation(prompt, c) for c in choices]
        assert all(ctx == pairs[0][0] for ctx, _ in pairs)  # one context per item
        items.append((pairs[0][0], [cont for _, cont in pairs]))
    got = lm.choice_loglikelihoods(items)  # batch 3: prefixes of different lengths share a padded batch
    for (ctx, conts), scores in zip(items, got):
        for cont, score in zip(conts, scores):
            expected = sum(token_logprobs(lm.model, ctx + cont)[len(ctx) - 1:])  # one unpadded forward
            assert score == pytest.approx(expected, abs=1e-4)


def test_shared_prefix_falls_back_to_full_scoring_when_truncated(tiny_checkpoint):
    lm = tiny_checkpoint.language_model()
    ctx, cont = lm.split_continuation("A postcard travels farther than most people think, carried by truck", " plane")
    saved = lm.max_length
    lm.max_length = len(ctx) + len(cont) - 2
    try:
        (score,), = lm.choice_loglikelihoods([(ctx, [cont])])
    finally:
        lm.max_length = saved
    window = (ctx + cont)[-(len(ctx) + len(cont) - 2):]
    assert score == pytest.approx(sum(token_logprobs(lm.model, window)[-len(cont):]), abs=1e-4)
