"""Initial values for the embedding rows of new tokens (pure tensor functions, used by `model extend`).

* ``subword-mean`` (EEVE, Chinese-LLaMA practice): a new token's row is the mean of the rows of the pieces
  the *old* tokenizer splits it into; for characters the old vocabulary lacked, those pieces are its
  byte-fallback tokens. The new token starts out meaning roughly what its spelling meant before.
* ``mean``: the mean of all old rows (Hewitt 2021): a neutral start that does not disturb the output
  distribution much.
* ``random``: N(0, initializer_range), what a fresh model would use.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer

INITS = ("mean", "subword-mean", "random")
LOGIT_OFFSET = 0.0


def old_subword_ids(old_tokenizer: Tokenizer, pieces: list[str]) -> list[list[int]]:
    """For each new piece (in the vocabulary's own form, e.g. ``▁한국``), the old ids it was split into.

    The old BPE *model* is applied directly to the piece, so no normaliser or prefix space is added: the
    piece's bytes are covered exactly once.
    """
    return [[t.id for t in old_tokenizer.model.tokenize(piece)] for piece in pieces]


def new_rows(old: torch.Tensor, init: str, subwords: list[list[int] | None], std: float,
             generator: torch.Generator) -> torch.Tensor:
    """Rows for ``len(subwords)`` new tokens from the old matrix ``old`` [V_old, H]; returns fp32 [N, H].

    ``subwords[i]`` is None for a token that has no meaningful spelling (e.g. an added special token):
    it gets the mean of all old rows under every init except ``random``.
    """
    old32 = old.float()
    mean = old32.mean(dim=0)
    n, hidden = len(subwords), old.shape[1]
    if init == "random":
        return torch.randn(n, hidden, generator=generator) * std
    rows = mean.expand(n, hidden).clone()
    if init == "subword-mean":
        for i, ids in enumerate(subwords):
            if ids:
                rows[i] = old32[ids].mean(dim=0)
    elif init != "mean":
        raise ValueError(f"unknown init {init!r}; choose one of {INITS}")
    return rows


@torch.no_grad()
def logit_shift_direction(model, old_tokenizer: Tokenizer, pieces: list[str], max_tokens: int = 2048) -> torch.Tensor:
    """A vector ``v`` [H] with ``h · v ≈ 1`` for the model's final hidden states ``h`` on target-language text.

    Final hidden states share a large common component (anisotropy): ``v = μ / |μ|²`` with ``μ`` their mean
    gives ``h · v`` = 1 on average (0.18 standard deviation on SmolLM2 / Korean), so adding ``c · v`` to an
    output row raises that token's logit by about ``c`` nats in every context. The text read is the new
    tokens' own spellings in old ids (no corpus needed), in windows of 512 tokens, at most ``max_tokens``.
    """
    ids = [i for piece in pieces for t in old_tokenizer.model.tokenize(piece) for i in [t.id]][:max_tokens]
    device = next(model.parameters()).device
    states = [model.base_model(input_ids=torch.tensor([ids[s:s + 512]], device=device)).last_hidden_state[0].float()
              for s in range(0, len(ids), 512)]
    mu = torch.cat(states).mean(dim=0).cpu()
    return mu / mu.dot(mu)
