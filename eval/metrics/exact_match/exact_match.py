"""Exact match for generation tasks, shipped with polyglot-llama so it loads offline with `evaluate.load(path)`.

A prediction counts when, after normalisation, it equals any of the references of its example. The
normalisation is script-agnostic (it must work for Korean, Japanese and Chinese as well as Latin scripts):
Unicode NFKC, case folding, punctuation and symbols dropped, runs of whitespace collapsed.
"""

import unicodedata

import datasets
import evaluate

_DESCRIPTION = "Share of predictions equal to one of their references after NFKC + casefold + punctuation removal."
_KWARGS = """
predictions: list of str.
references: list of list of str (one or more acceptable answers per prediction).
Returns {"exact_match": float in [0, 1]}.
"""


def normalize_answer(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    # Category P* is punctuation, S* symbols: both carry no answer content ("Paris." == "paris").
    kept = "".join(ch for ch in text if not unicodedata.category(ch).startswith(("P", "S")))
    return " ".join(kept.split())


class ExactMatch(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features({
                "predictions": datasets.Value("string"),
                "references": datasets.Sequence(datasets.Value("string")),
            }),
        )

    def _compute(self, predictions, references):
        if not predictions:
            return {"exact_match": 0.0}
        hits = sum(
            any(normalize_answer(pred) == normalize_answer(ref) for ref in refs)
            for pred, refs in zip(predictions, references)
        )
        return {"exact_match": hits / len(predictions)}
