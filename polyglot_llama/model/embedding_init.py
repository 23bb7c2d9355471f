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
