"""Bits per byte of a causal LM on a few documents: the before/after measure of `model extend`.

``bpb = Σ NLL (nats) / UTF-8 bytes / ln 2``; unlike perplexity it compares a model with its
vocabulary-extended successor, whose tokens are longer. Every document is scored after one context token
that both tokenizers share (the BOS the tokenizer adds, else its end-of-text token), so every text token,
the first included, is predicted once and the two models see the same context.
"""

from __future__ import annotations

import math

import torch
from tokenizers import Tokenizer

END_OF_TEXT = ("<|endoftext|>", "<|end_of_text|>", "<eos>", "</s>", "<|im_end|>")


def context_token(tokenizer: Tokenizer) -> int:
    """The id every scored document starts after: the BOS the tokenizer adds, else an end-of-text token."""
    with_specials = tokenizer.encode("a", add_special_tokens=True).ids
    plain = tokenizer.encode("a", add_special_tokens=False).ids
    if len(with_specials) > len(plain) and with_specials[-len(plain):] == plain:
        return with_specials[0]
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    for name in END_OF_TEXT:
        if name in vocab:
            return vocab[name]
    return 0


@torch.no_grad()
def bits_per_byte(model, tokenizer: Tokenizer, texts: list[str], max_chars: int = 1000, batch_size: int = 4) -> float:
    """Bits per byte of ``model`` on ``texts``, each cut to its first ``max_chars`` characters (the same text
    for any tokenizer, so that two tokenizers are compared on the same bytes)."""
    first = context_token(tokenizer)
    docs = []
    for text in texts:
        text = text[:max_chars]
        docs.append(([first] + tokenizer.encode(text, add_special_tokens=False).ids, len(text.encode("utf-8"))))
    nll, n_bytes = 0.0, 0
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    for start in range(0, len(docs), batch_size):
        batch = docs[start:start + batch_size]
        width = max(len(ids) for ids, _ in batch)
        ids = torch.zeros(len(batch), width, dtype=torch.long)
        mask = torch.zeros(len(batch), width, dtype=torch.long)
        for r, (seq, _) in enumerate(batch):
            ids[r, :len(seq)], mask[r, :len(seq)] = torch.tensor(seq), 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()  # [B, T, V]
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None].to(device))[..., 0]  # [B, T-1]
        nll -= (logprobs * mask[:, 1:].to(device)).sum().item()
        n_bytes += sum(b for _, b in batch)
    model.train(was_training)
    return nll / n_bytes / math.log(2)
