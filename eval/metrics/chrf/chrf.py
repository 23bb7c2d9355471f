"""chrF (Popović 2015) for translation tasks, shipped with polyglot-llama so it loads offline.

Corpus-level chrF as sacreBLEU computes it with its defaults (char_order=6, word_order=0, beta=2,
whitespace removed): character n-gram counts of order 1..6 are summed over the corpus; for each order n,
precision P_n = matches / hypothesis n-grams and recall R_n = matches / reference n-grams give
F_n = (1 + β²) P_n R_n / (β² P_n + R_n); chrF = 100 · mean of F_n over the orders that both sides have.
With several references per sentence, the reference with the best sentence-level chrF is used.
Characters, not words, make the score meaningful for unsegmented scripts (Japanese, Chinese).
"""

from collections import Counter

import datasets
import evaluate

_DESCRIPTION = "Character n-gram F-score (chrF, beta=2, orders 1-6), corpus level, in [0, 100]."
_KWARGS = """
predictions: list of str.
references: list of list of str.
char_order: int, default 6. beta: float, default 2.
Returns {"chrf": float in [0, 100]}.
"""


def _ngram_stats(hypothesis: str, reference: str, order: int) -> list[tuple[int, int, int]]:
    """[(hyp n-grams, ref n-grams, matches)] for n = 1..order, whitespace removed."""
    hyp = "".join(hypothesis.split())
    ref = "".join(reference.split())
    stats = []
    for n in range(1, order + 1):
        h = Counter(hyp[i:i + n] for i in range(len(hyp) - n + 1))
        r = Counter(ref[i:i + n] for i in range(len(ref) - n + 1))
        stats.append((sum(h.values()), sum(r.values()), sum((h & r).values())))
    return stats


def _f_score(stats: list[tuple[int, int, int]], beta: float) -> float:
    factor = beta ** 2
    total, effective = 0.0, 0
    for n_hyp, n_ref, n_match in stats:
        if n_hyp == 0 or n_ref == 0:
            continue
        effective += 1
        precision, recall = n_match / n_hyp, n_match / n_ref
        if precision + recall > 0:
            total += (1 + factor) * precision * recall / (factor * precision + recall)
    return 100.0 * total / effective if effective else 0.0


class Chrf(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Popović, chrF: character n-gram F-score for automatic MT evaluation, WMT 2015.",
            inputs_description=_KWARGS,
            features=datasets.Features({
                "predictions": datasets.Value("string"),
                "references": datasets.Sequence(datasets.Value("string")),
            }),
        )

    def _compute(self, predictions, references, char_order: int = 6, beta: float = 2.0):
        corpus = [[0, 0, 0] for _ in range(char_order)]
        for pred, refs in zip(predictions, references):
            candidates = [_ngram_stats(pred, ref, char_order) for ref in refs] or [_ngram_stats(pred, "", char_order)]
            best = max(candidates, key=lambda s: _f_score(s, beta))
            for acc, triple in zip(corpus, best):
                for i in range(3):
                    acc[i] += triple[i]
        return {"chrf": _f_score([tuple(s) for s in corpus], beta)}
