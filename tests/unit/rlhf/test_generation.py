"""Generation: seeded per-row sampling that does not depend on batch composition; top-p; EOS handling."""

from __future__ import annotations

import pytest
import torch

from polyglot_llama.errors import UserError
from polyglot_llama.model.checkpoint import load_causal_lm, load_tokenizer
from polyglot_llama.rlhf.generation import (
    Generation, PerRowSampler, SamplingConfig, derive_seed, generate, resolve_backend, top_p_filter, vllm_available,
)


@pytest.fixture(scope="module")
def model_and_tokenizer(en_model_dir):
    return load_causal_lm(en_model_dir), load_tokenizer(en_model_dir)


def _prompts(tokenizer, texts):
    return [tokenizer(t)["input_ids"] for t in texts]


def test_same_seed_same_answer_alone_or_in_any_batch(model_and_tokenizer):
    model, tok = model_and_tokenizer
    prompts = _prompts(tok, ["The history of", "A", "Rivers and mountains of the north", "Once"])
    sampling = SamplingConfig(max_new_tokens=12, temperature=1.0, batch_size=4, backend="hf")
    seeds = [derive_seed(0, i) for i in range(len(prompts))]
    together = generate(model, tok, prompts, sampling, seeds, progress=False)
    alone = [generate(model, tok, [p], sampling, [s], progress=False)[0] for p, s in zip(prompts, seeds)]
    pairs = generate(model, tok, prompts[::-1], SamplingConfig(max_new_tokens=12, batch_size=2, backend="hf"),
                     seeds[::-1], progress=False)[::-1]
    assert [g.completion_ids for g in together] == [g.completion_ids for g in alone] == [g.completion_ids for g in pairs]
    # different seeds give different samples from an (untrained, near-uniform) model
    other = generate(model, tok, prompts, sampling, [s + 1 for s in seeds], progress=False)
    assert [g.completion_ids for g in other] != [g.completion_ids for g in together]
    for g, p in zip(together, prompts):
        assert isinstance(g, Generation) and g.prompt_ids == p
        assert 1 <= len(g.completion_ids) <= 12
        assert g.finished == (g.completion_ids[-1] == tok.eos_token_id)
        assert tok.eos_token_id not in g.completion_ids[:-1]


def test_greedy_matches_hf_greedy(model_and_tokenizer):
    model, tok = model_and_tokenizer
    prompt = _prompts(tok, ["The history of the world"])[0]
    ours = generate(model, tok, [prompt], SamplingConfig(max_new_tokens=8, temperature=0, backend="hf"), [0], progress=False)[0]
    ref = model.generate(torch.tensor([prompt]), max_new_tokens=8, do_sample=False, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.eos_token_id)[0, len(prompt):].tolist()
    assert ours.completion_ids == ref[: len(ours.completion_ids)]


def test_per_row_sampler_draws_from_softmax():
    # argmax(logits/T + Gumbel) over many seeds reproduces softmax(logits/T)
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    counts = torch.zeros(4)
    for seed in range(4000):
        sampler = PerRowSampler([seed], temperature=1.3, top_p=1.0, device=torch.device("cpu"))
        counts[sampler(None, logits).argmax()] += 1
    expected = (logits[0] / 1.3).softmax(-1)
    assert torch.allclose(counts / counts.sum(), expected, atol=0.03)


def test_top_p_keeps_smallest_set_reaching_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    kept = torch.isfinite(top_p_filter(probs.log(), 0.8))[0].tolist()
    assert kept == [True, True, False, False]
    kept = torch.isfinite(top_p_filter(probs.log(), 0.81))[0].tolist()
    assert kept == [True, True, True, False]
    # order in the vocabulary does not matter; the top token is always kept
    shuffled = probs[:, [2, 0, 3, 1]]
    assert torch.isfinite(top_p_filter(shuffled.log(), 0.8))[0].tolist() == [False, True, False, True]
    assert torch.isfinite(top_p_filter(probs.log(), 0.01))[0].tolist() == [True, False, False, False]


def test_bad_sampling_settings_are_one_line_errors():
    with pytest.raises(UserError, match="top_p"):
        SamplingConfig(top_p=0)
    with pytest.raises(UserError, match="temperature"):
        SamplingConfig(temperature=-1)
    if not vllm_available():  # here: vLLM is not installed, so asking for it is a clear error
        with pytest.raises(UserError, match="vLLM is not installed"):
            resolve_backend(SamplingConfig(backend="vllm"), "some/dir")
    assert resolve_backend(SamplingConfig(backend="auto"), None) == "hf"  # no model dir: HF backend

def test_derive_seed_is_stable_and_distinct():
    assert derive_seed(0, "p1", 3) == derive_seed(0, "p1", 3)
    assert len({derive_seed(0, "p1", k) for k in range(100)}) == 100


def test_checkpoint_generation_config_is_not_inherited(en_model_dir):
    # A checkpoint that ships a repetition penalty and no-repeat n-grams: greedy decoding must still be the
    # plain argmax of the model's logits, step by step (computed here without `generate`).
    model, tok = load_causal_lm(en_model_dir), load_tokenizer(en_model_dir)
    model.generation_config.repetition_penalty = 50.0
    model.generation_config.no_repeat_ngram_size = 1
    model.generation_config.top_k = 1
    prompt = _prompts(tok, ["The history of the world"])[0]
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(10):
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    expected = ids[len(prompt):]
    assert len(set(expected)) < len(expected)  # the untrained model repeats itself: the penalties would bite
    model.generation_config.suppress_tokens = [expected[0]]  # any other processor it ships is ignored too
    ours = generate(model, tok, [prompt], SamplingConfig(max_new_tokens=10, temperature=0, backend="hf"), [0], progress=False)[0]
    assert ours.completion_ids == expected[: len(ours.completion_ids)]
    assert model.generation_config.repetition_penalty == 50.0  # the model's own config is restored
    # ... and a config that asks for the penalty gets it
    asked = generate(model, tok, [prompt], SamplingConfig(max_new_tokens=10, temperature=0, backend="hf",
                                                          no_repeat_ngram_size=1), [0], progress=False)[0]
    assert len(set(asked.completion_ids)) == len(asked.completion_ids)
