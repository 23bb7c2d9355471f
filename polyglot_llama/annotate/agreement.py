"""Inter-annotator agreement on the items given to two annotators: percent agreement and Cohen's kappa.

Each doubly-labelled item contributes one pair of categorical labels (which answer was preferred, 'a' or
'b'). Raters differ from item to item, so kappa is computed over the (first label, second label) pairs, the
usual treatment when every item has exactly two ratings: kappa = (p_o - p_e) / (1 - p_e), with p_o the
observed agreement and p_e the agreement expected from each position's label frequencies (Cohen 1960).
"""

from __future__ import annotations

from collections import Counter


def percent_agreement(pairs: list[tuple[str, str]]) -> float | None:
    if not pairs:
        return None
    return sum(a == b for a, b in pairs) / len(pairs)


def cohens_kappa(pairs: list[tuple[str, str]]) -> float | None:
    """None without pairs; 1.0 when both raters always give the one same label (p_e = 1, perfect agreement)."""
    if not pairs:
        return None
    n = len(pairs)
    p_o = sum(a == b for a, b in pairs) / n
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    p_e = sum(first[label] * second[label] for label in first.keys() | second.keys()) / (n * n)
    if p_e == 1.0:
        return 1.0 if p_o == 1.0 else 0.0
    return (p_o - p_e) / (1 - p_e)


def agreement_by_language(labels) -> dict[str, dict]:
    """lang -> {items, percent, kappa} over items with two or more labels (the first two, by label id)."""
    by_item: dict[int, list] = {}
    lang_of: dict[int, str] = {}
    for row in labels:
        by_item.setdefault(row["item_id"], []).append(row["choice"])
        lang_of[row["item_id"]] = row["lang"]
    pairs: dict[str, list[tuple[str, str]]] = {}
    for item_id, choices in by_item.items():
        if len(choices) >= 2:
            pairs.setdefault(lang_of[item_id], []).append((choices[0], choices[1]))
    return {lang: {"items": len(p), "percent": percent_agreement(p), "kappa": cohens_kappa(p)}
            for lang, p in sorted(pairs.items())}
