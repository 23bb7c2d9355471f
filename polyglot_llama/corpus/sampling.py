"""The sampling maths of `corpus mix`: pure functions, no I/O.

Three levels, each a plain function so it can be tested against hand-computed values:

1. **Languages** get a token budget from their available token counts ``n_l``:
   temperature sampling ``p_l ∝ n_l^α`` (XLM-R / mT5 use α = 0.3), UniMax (Chung et al. 2023: a uniform
   budget across languages, capped at ``max_epochs`` passes over each language's data) or explicit weights;
   optionally one *replay* language (usually English) takes a fixed share and the rest share the remainder.
2. **Sources** within a language split its budget in proportion to their *effective* size: tokens × the
   source's upsampling factor (Llama 2 §2.1 up-sampled its most factual sources), with every document
   counted by its rehydration weight.
3. **Documents** get an integer number of copies whose expectation matches the source budget exactly:
   the whole part of the expected copies always, one more with probability equal to the fractional part
   (stochastic rounding), so the drawn token count deviates from the plan only by sampling error.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..errors import UserError

# FineWeb-2's "re-hydration" weights (github.com/huggingface/fineweb-2, README "Deduplication"): a document
# kept from a MinHash cluster of size N appears N times for N = 2, 3; 3 times for N = 4; 5 times for
# 5 ≤ N < 100; 8 times for 100 ≤ N < 1000; once for N ≥ 1000 (very large clusters are mostly boilerplate).
# Read as: the weight of the largest threshold ≤ N.
FINEWEB2_REHYDRATION: dict[int, float] = {1: 1.0, 2: 2.0, 3: 3.0, 4: 3.0, 5: 5.0, 100: 8.0, 1000: 1.0}


def normalize_weights(weights: Mapping[str, float], what: str = "weights") -> dict[str, float]:
    """Scale non-negative weights to sum to 1; negative or all-zero weights are a `UserError`."""
    negative = {k: w for k, w in weights.items() if w < 0}
    if negative:
        key, value = next(iter(negative.items()))
        raise UserError(f"key '{what}.{key}' is {value}; weights must be non-negative")
    total = float(sum(weights.values()))
    if not total > 0:
        raise UserError(f"key '{what}' sums to {total}; give at least one positive weight")
    return {k: float(w) / total for k, w in weights.items()}


def temperature_shares(tokens: Mapping[str, float], alpha: float) -> dict[str, float]:
    """``p_l = n_l^α / Σ_k n_k^α``: α = 1 keeps natural proportions, α = 0 is uniform, 0.3 is mT5's choice."""
    if not 0 <= alpha <= 1:
        raise UserError(f"key 'alpha' is {alpha}; the sampling temperature exponent must lie in [0, 1]")
    # Computed in log space relative to the largest language so n^α never overflows for 1e12-token corpora.
    langs = [lang for lang, n in tokens.items() if n > 0]
    if not langs:
        raise UserError("no language has any tokens to sample from")
    logs = np.array([alpha * np.log(float(tokens[lang])) for lang in langs])
    weights = np.exp(logs - logs.max())
    shares = dict(zip(langs, (weights / weights.sum()).tolist()))
    return {lang: shares.get(lang, 0.0) for lang in tokens}


def unimax_budgets(tokens: Mapping[str, float], total_budget: float, max_epochs: float) -> dict[str, float]:
    """UniMax (Chung et al. 2023, Algorithm 1): token budget per language.

    Visit languages from the smallest to the largest; each gets an equal split of the budget still left,
    ``B_left / languages_left``, but never more than ``max_epochs · n_l``. What a small language cannot use
    flows to the larger ones. If every language is capped, part of the budget stays unused.
    """
    if max_epochs <= 0:
        raise UserError(f"key 'max_epochs' is {max_epochs}; UniMax needs a positive epoch cap, e.g. 4")
    budgets: dict[str, float] = {}
    left = float(total_budget)
    ordered = sorted(tokens, key=lambda lang: (tokens[lang], lang))
    for i, lang in enumerate(ordered):
        budgets[lang] = min(left / (len(ordered) - i), max_epochs * float(tokens[lang]))
        left -= budgets[lang]
    return {lang: budgets[lang] for lang in tokens}


def language_budgets(tokens: Mapping[str, float], total_budget: float, method: str, *, alpha: float = 0.3,
                     weights: Mapping[str, float] | None = None, max_epochs: float = 4.0,
                     replay_lang: str | None = None, replay_share: float | None = None) -> dict[str, float]:
    """Token budget per language for ``method`` ∈ {temperature, unimax, weights}, with optional replay.

    With replay, ``replay_lang`` receives exactly ``replay_share · total_budget`` tokens and the method
    distributes the remaining ``(1 - replay_share) · total_budget`` over the other languages.
    """
    if replay_share is not None and not 0 <= replay_share < 1:
        raise UserError(f"key 'replay.share' is {replay_share}; it must lie in [0, 1) (e.g. 0.1 for 90:10 as in Swallow)")
    replay = replay_lang is not None and replay_share is not None
    if replay and replay_lang not in tokens:
        raise UserError(f"key 'replay.lang' is {replay_lang!r} but no source has that language; add a source or change it")
    others = {lang: n for lang, n in tokens.items() if not (replay and lang == replay_lang)}
    if not others:
        raise UserError("the replay language is the only language in the mixture; add a source in the target language")
    rest = total_budget * (1 - replay_share) if replay else float(total_budget)
    if method == "temperature":
        budgets = {lang: rest * p for lang, p in temperature_shares(others, alpha).items()}
    elif method == "unimax":
        budgets = unimax_budgets(others, rest, max_epochs)
    elif method == "weights":
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(tokens))
        if unknown:
            raise UserError(f"key 'weights.{unknown[0]}' names a language without a source; sources have: {', '.join(sorted(tokens))}")
        if replay and replay_lang in weights:
            raise UserError(f"language {replay_lang!r} is the replay language; give its share in 'replay.share' or in 'weights', not both")
        shares = normalize_weights({lang: weights.get(lang, 0.0) for lang in others})
        budgets = {lang: rest * p for lang, p in shares.items()}
    else:
        raise UserError(f"key 'method' is {method!r}; choose temperature, unimax or weights")
    if replay:
        budgets[replay_lang] = total_budget * replay_share
    return {lang: budgets[lang] for lang in tokens}


def split_budget(budget: float, effective_tokens: Mapping[str, float]) -> dict[str, float]:
    """Split one language's budget over its sources in proportion to their effective (upsampled) tokens."""
    total = float(sum(effective_tokens.values()))
    if total <= 0:
        return {name: 0.0 for name in effective_tokens}
    return {name: budget * float(e) / total for name, e in effective_tokens.items()}


def rehydration_weights(cluster_sizes: np.ndarray, table: Mapping[int, float]) -> np.ndarray:
    """Per-document weight: the table's value at the largest threshold ≤ the document's cluster size.

    ``cluster_sizes`` [D] (int, ≥ 1; 1 = no duplicates) → weights [D] (float). Sizes below the smallest
    threshold get weight 1.
    """
    thresholds = np.array(sorted(table), dtype=np.int64)
    values = np.array([float(table[t]) for t in sorted(table)])
    position = np.searchsorted(thresholds, np.asarray(cluster_sizes, dtype=np.int64), side="right") - 1
    return np.where(position >= 0, values[np.clip(position, 0, None)], 1.0)


def repeat_counts(doc_tokens: np.ndarray, doc_weights: np.ndarray, budget: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Copies of each document so that the drawn tokens match ``budget`` in expectation.

    doc_tokens [D] (tokens per document), doc_weights [D] (relative sampling weight, e.g. rehydration) →
    copies [D] (int). Expected copies ``c_d = budget · w_d / Σ_k w_k·t_k`` make ``E[Σ c_d·t_d] = budget``;
    stochastic rounding keeps the variance at ``Σ t_d²·f_d(1 - f_d)`` with f_d the fractional part.
    """
    doc_tokens = np.asarray(doc_tokens, dtype=np.float64)
    doc_weights = np.asarray(doc_weights, dtype=np.float64)
    mass = float((doc_tokens * doc_weights).sum())
    if budget <= 0 or mass <= 0:
        return np.zeros(len(doc_tokens), dtype=np.int64)
    expected = budget * doc_weights / mass
    whole = np.floor(expected)
    return (whole + (rng.random(len(expected)) < expected - whole)).astype(np.int64)
