"""Task kind ``perplexity``: perplexity and bits per byte per language on held-out text.

Perplexity depends on the tokenizer (a vocabulary with longer pieces predicts fewer, harder tokens), so it
cannot compare a base model with its vocabulary-extended successor. Bits per byte can: the same total
negative log-likelihood, divided by the UTF-8 bytes of the text instead of the token count:
``bpb = Σ NLL (nats) / bytes / ln 2``. Each document is encoded as the tokenizer does by default (with BOS
only where the tokenizer adds one); every token after the first is predicted once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

from ..errors import UserError
from ..io import RejectCounter
from .data import DataSpec, load_by_language, report_empty_languages
from .stats import bootstrap_ratio_interval


@dataclass
class PerplexityTask:
    name: str = ""
    """Task name in reports."""
    kind: Literal["perplexity"] = "perplexity"
    """Task kind."""
    data: DataSpec | None = None
    """Held-out documents: {files, lang_field, languages, limit}."""
    text_field: str = "text"
    """Field holding the document text."""
    stride: int = 0
    """Tokens predicted per window for documents longer than the context (0 = half the context)."""

    PRIMARY: ClassVar[str] = "bits_per_byte"
    HIGHER_IS_BETTER: ClassVar[bool] = False
    VERSION: ClassVar[int] = 3  # 2: no forced BOS; 3: bootstrap interval of bits per byte

    def __post_init__(self):
        if self.data is None:
            raise UserError(f"task '{self.name}': key 'data' is required (data: {{files: [...]}})")
        if self.stride < 0:
            raise UserError(f"task '{self.name}': key 'stride' must be 0 (auto) or positive")

    def evaluate(self, checkpoint, rejects: RejectCounter) -> dict:
        lm = checkpoint.language_model()
        by_lang = load_by_language(self.data, [self.text_field], rejects)
        languages = report_empty_languages(by_lang, rejects, self.data.files[0])
        docs = [(lang, record[self.text_field]) for lang in languages for record in by_lang[lang]]
        scores = lm.rolling_nll([lm.encode(text) for _, text in docs], stride=self.stride, desc=f"{self.name} nll")
        totals: dict[str, list[float]] = {lang: [0.0, 0, 0, 0] for lang in languages}  # nll, tokens, bytes, docs
        per_doc: dict[str, list[tuple[float, int]]] = {lang: [] for lang in languages}  # (nll, bytes)
        for (lang, text), (nll, n_tokens) in zip(docs, scores):
            total = totals[lang]
            total[0] += nll
            total[1] += n_tokens
            total[2] += len(text.encode("utf-8"))
            total[3] += 1
            per_doc[lang].append((nll, len(text.encode("utf-8"))))
        results = {}
        for lang, total in totals.items():
            metrics = perplexity_metrics(*total)
            if metrics["bits_per_byte"] is not None:  # documents resampled: how much the number rests on which texts
                low, high = bootstrap_ratio_interval([n / math.log(2) for n, _ in per_doc[lang]], [b for _, b in per_doc[lang]])
                metrics["ci95"], metrics["ci_method"] = [low, high], "bootstrap"
            results[lang] = metrics
        return {"languages": results}


def perplexity_metrics(nll: float, n_tokens: int, n_bytes: int, n_docs: int) -> dict:
    """Metrics from a summed NLL in nats over ``n_tokens`` predicted tokens spanning ``n_bytes`` UTF-8 bytes."""
    return {
        "bits_per_byte": nll / n_bytes / math.log(2) if n_bytes else None,
        "perplexity": math.exp(nll / n_tokens) if n_tokens else None,
        "nll_per_token": nll / n_tokens if n_tokens else None,
        "tokens_per_byte": n_tokens / n_bytes if n_bytes else None,
        "tokens": int(n_tokens),
        "bytes": int(n_bytes),
        "n": int(n_docs),
    }
