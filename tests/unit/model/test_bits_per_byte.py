"""bits_per_byte against a hand computation: a model whose LM head is zero predicts uniformly over V ids."""

from __future__ import annotations

import math

import torch
from tokenizers import Tokenizer

from polyglot_llama.model.bits_per_byte import bits_per_byte, context_token
from polyglot_llama.model.checkpoint import load_causal_lm


def test_uniform_model_costs_log2_vocab_bits_per_token(en_model_dir):
    model = load_causal_lm(en_model_dir)
    with torch.no_grad():
        model.get_output_embeddings().weight.zero_()
    tokenizer = Tokenizer.from_file(str(en_model_dir / "tokenizer.json"))
    texts = ["The tide comes in twice a day.", "Bread needs patience more than skill, and a warm kitchen helps."]
    n_tokens = sum(len(tokenizer.encode(t, add_special_tokens=False).ids) for t in texts)  # every token is predicted
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    rows = model.get_output_embeddings().weight.shape[0]
    assert math.isclose(bits_per_byte(model, tokenizer, texts, batch_size=1), n_tokens * math.log2(rows) / n_bytes, rel_tol=1e-5)
    assert math.isclose(bits_per_byte(model, tokenizer, texts, max_chars=10, batch_size=2),
                        sum(len(tokenizer.encode(t[:10], add_special_tokens=False).ids) for t in texts) * math.log2(rows) / 20,
                        rel_tol=1e-5)


def test_context_token_is_the_added_bos(en_model_dir):
    tokenizer = Tokenizer.from_file(str(en_model_dir / "tokenizer.json"))
    assert context_token(tokenizer) == tokenizer.token_to_id("<s>")  # the Llama-2-style tokenizer adds <s>
