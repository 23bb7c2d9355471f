"""Task kind ``generation``: greedy answers scored by `evaluate` metrics (exact match, chrF), per language.

Translation pairs, arithmetic and short factual answers. ``fewshot`` turns the first k examples of each
language into demonstrations (``prompt answer`` blocks) prepended to every scored prompt, which base
models need; chat checkpoints can instead get the prompt in their own chat template (``chat: true``).
An empty answer is counted under problems and scored as wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar, Literal

from ..errors import UserError
from ..io import RejectCounter
from . import jinja_prompts as jinja
from .data import DataSpec, load_by_language, report_empty_languages
from .metrics import compute_metric, resolve_metric


@dataclass
class GenerationTask:
    name: str = ""
    """Task name in reports."""
    kind: Literal["generation"] = "generation"
    """Task kind."""
    data: DataSpec | None = None
    """Examples: {files, lang_field, languages, limit}."""
    prompt: str = "{prompt}"
    """Prompt template; {field} is replaced by the record's field."""
    answer_field: str = "answer"
    """Field with the reference answer (a string or a list of acceptable answers)."""
    metrics: list[str] = field(default_factory=lambda: ["exact_match", "chrf"])
    """evaluate modules: bundled names (exact_match, chrf) or paths to module directories; the first is the headline."""
    fewshot: int = 0
    """Demonstrations per language, taken from the first examples of that language (not scored)."""
    fewshot_separator: str = "\n\n"
    """Text between demonstrations and before the scored prompt."""
    chat: bool = False
    """Send the prompt as a user turn in the model's chat template (for chat checkpoints)."""
    system: str = ""
    """System prompt when chat is true."""
    chat_template: str = ""
    """Chat template when chat is true: '' = the tokenizer's own (Llama 2's format when it has none), 'llama2', or a Jinja template as a string or file path."""
    max_new_tokens: int = 32
    """Longest answer, in tokens."""
    stop: list[str] = field(default_factory=lambda: ["\n"])
    """The answer ends at the first of these strings."""
    extract: Literal["", "last_number"] = ""
    """last_number: score the last number of the answer against the reference number (MGSM), commas dropped."""
    words: dict[str, dict[str, str]] = field(default_factory=dict)
    """Words per language, available to Jinja prompts as w (e.g. MGSM's "Question"/"Answer" per language)."""

    PRIMARY: ClassVar[str] = "exact_match"
    HIGHER_IS_BETTER: ClassVar[bool] = True
    VERSION: ClassVar[int] = 3  # 2: limit excludes demonstrations, no forced BOS; 3: outcomes

    def __post_init__(self):
        if self.data is None:
            raise UserError(f"task '{self.name}': key 'data' is required (data: {{files: [...]}})")
        if not self.metrics:
            raise UserError(f"task '{self.name}': key 'metrics' needs at least one metric, e.g. [exact_match, chrf]")
        if self.fewshot < 0 or self.max_new_tokens < 1:
            raise UserError(f"task '{self.name}': 'fewshot' must be >= 0 and 'max_new_tokens' >= 1")

    def resolve(self, base_dir: Path) -> None:
        """Find the metric modules; the headline metric is the first module's name (its result key)."""
        self.metric_paths = [str(resolve_metric(m, base_dir)) for m in self.metrics]
        self.PRIMARY = Path(self.metric_paths[0]).stem
        from ..chat import check_template_spec

        self.chat_template = check_template_spec(self.chat_template, f"{self.name}.chat_template", base_dir)

    def fingerprint_extra(self) -> str:
        """The metric code changes the scores, so it is part of the cache key."""
        files = [p for path in map(Path, self.metric_paths) for p in (sorted(path.glob("*.py")) if path.is_dir() else [path])]
        return "".join(p.read_text(encoding="utf-8") for p in files)

    def _prompt(self, record: dict, lang: str) -> str:
        if self.words and lang not in self.words:
            raise UserError(f"task '{self.name}': no words for language '{lang}' (key 'words' lists {', '.join(self.words)})")
        return jinja.render(self.prompt, record, self.words.get(lang, {}))

    def _encode(self, lm, demos: list[dict], record: dict, lang: str) -> list[int]:
        shots = [f"{self._prompt(d, lang)} {references(d[self.answer_field])[0]}" for d in demos]
        text = self.fewshot_separator.join(shots + [self._prompt(record, lang)])
        if not self.chat:
            return lm.encode(text)
        from .templates import chat_prompt_ids

        return chat_prompt_ids(lm.tokenizer, text, self.system, self.chat_template)

    def evaluate(self, checkpoint, rejects: RejectCounter) -> dict:
        lm = checkpoint.language_model()
        # data.limit counts scored examples; the demonstrations come on top of it (else --limit 2 scores none).
        spec = replace(self.data, limit=self.data.limit + self.fewshot if self.data.limit else 0)
        by_lang = load_by_language(spec, jinja.fields(self.prompt) + [self.answer_field], rejects)
        for lang in [lang for lang in by_lang if self.words and lang not in self.words]:
            for record in by_lang.pop(lang):
                rejects.add(self.data.files[0], 0, f"no words for language '{lang}' in the task's 'words'", str(record))
        scored = {lang: records[self.fewshot:] for lang, records in by_lang.items()}
        languages = report_empty_languages(scored, rejects, self.data.files[0])
        jobs = [(lang, record, self._encode(lm, by_lang[lang][:self.fewshot], record, lang))
                for lang in languages for record in scored[lang]]
        answers = lm.greedy_answers([ids for _, _, ids in jobs], self.max_new_tokens, self.stop)
        predictions = []
        for (lang, record, _), answer in zip(jobs, answers):
            if not answer:
                rejects.add(self.data.files[0], 0, "empty answer", str(record))
            refs = references(record[self.answer_field])
            if self.extract == "last_number":  # MGSM: the final number of the answer is the prediction
                answer, refs = last_number(answer), [last_number(r) for r in refs]
            predictions.append({"lang": lang, "prompt": self._prompt(record, lang), "answer": answer, "references": refs})
        results = {}
        for lang in languages:
            rows = [p for p in predictions if p["lang"] == lang]
            metrics: dict = {"n": len(rows), "empty_answers": sum(not p["answer"] for p in rows)}
            for path in self.metric_paths:
                metrics.update(compute_metric(path, [p["answer"] for p in rows], [p["references"] for p in rows]))
            if self.PRIMARY == "exact_match":  # per-item 0/1, for intervals and paired tests (chrF is corpus-level)
                metrics["outcomes"] = [int(compute_metric(self.metric_paths[0], [p["answer"]], [p["references"]])["exact_match"] > 0)
                                       for p in rows]
            results[lang] = metrics
        return {"languages": results, "predictions": predictions}


def references(value) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def last_number(text: str) -> str:
    """The last number in ``text``, thousands separators dropped and trailing decimal zeros cut ("1,200.0" → "1200")."""
    found = re.findall(r"-?\d[\d,]*(?:\.\d+)?", text)
    if not found:
        return ""
    number = found[-1].replace(",", "")
    return number.rstrip("0").rstrip(".") if "." in number else number
