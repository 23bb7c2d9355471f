"""Task kind ``multiple_choice``: pick the choice with the highest log-likelihood (Belebele, XNLI, XCOPA, KoBEST).

Each choice is scored as a continuation of the prompt: ``Σ log p(choice tokens | prompt)``. ``accuracy``
takes the argmax of that sum; ``accuracy_norm`` divides it by the choice's length in characters first
(lm-evaluation-harness's acc_norm), which removes the bias towards short choices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from ..errors import UserError
from ..io import RejectCounter
from . import jinja_prompts as jinja
from .data import DataSpec, load_by_language, report_empty_languages


@dataclass
class MultipleChoiceTask:
    name: str = ""
    """Task name in reports."""
    kind: Literal["multiple_choice"] = "multiple_choice"
    """Task kind."""
    data: DataSpec | None = None
    """Examples: {files, lang_field, languages, limit}."""
    prompt: str = "{question}\nAnswer:"
    """Prompt template; {field} is replaced by the record's field (e.g. Belebele: "{flores_passage}\\n{question}")."""
    choices: list[str] = field(default_factory=lambda: ["choices"])
    """Choice fields: one field holding a list, or several fields with one choice each (mc_answer1, ...)."""
    answer_field: str = "answer"
    """Field with the correct choice: an index, or the choice text itself."""
    answer_base: int = 0
    """Index of the first choice in answer_field (Belebele's correct_answer_num counts from 1)."""
    choice_prefix: str = " "
    """Text between the prompt and each choice."""
    choice_list: str = ""
    """Jinja expression giving the list of choices (lm-eval's doc_to_choice), e.g. "[sentence1 + ', ' + w.yes]"; replaces 'choices'."""
    target: str = ""
    """Jinja expression giving the correct choice, an index or the choice text (lm-eval's doc_to_target); replaces answer_field."""
    words: dict[str, dict[str, str]] = field(default_factory=dict)
    """Words per language, available to Jinja prompts as w (e.g. {de: {yes: Ja, no: Nein}})."""

    PRIMARY: ClassVar[str] = "accuracy"
    HIGHER_IS_BETTER: ClassVar[bool] = True
    VERSION: ClassVar[int] = 3  # 2: no forced BOS, the harness's split; 3: per-item outcomes

    def __post_init__(self):
        if self.data is None:
            raise UserError(f"task '{self.name}': key 'data' is required (data: {{files: [...]}})")
        if not self.choices and not self.choice_list:
            raise UserError(f"task '{self.name}': key 'choices' needs at least one field name")

    def _words(self, lang: str) -> dict:
        if self.words and lang not in self.words:
            raise UserError(f"task '{self.name}': no words for language '{lang}' (key 'words' lists {', '.join(self.words)})")
        return self.words.get(lang, {})

    def _choice_list(self, record: dict, lang: str) -> list[str] | None:
        if self.choice_list:
            value = jinja.evaluate(self.choice_list, record, self._words(lang))
            return [str(c) for c in value] if isinstance(value, (list, tuple)) else None
        if len(self.choices) == 1:
            value = record[self.choices[0]]
            return [str(c) for c in value] if isinstance(value, list) else None
        return [str(record[name]) for name in self.choices]

    def _answer_index(self, record: dict, choices: list[str], lang: str) -> int | None:
        answer = jinja.evaluate(self.target, record, self._words(lang)) if self.target else record[self.answer_field]
        if isinstance(answer, str) and answer in choices:
            return choices.index(answer)
        try:
            index = int(answer) - self.answer_base
        except (TypeError, ValueError):
            return None
        return index if 0 <= index < len(choices) else None

    def evaluate(self, checkpoint, rejects: RejectCounter) -> dict:
        lm = checkpoint.language_model()
        required = (jinja.fields(self.prompt) + (jinja.fields(expression=self.choice_list) if self.choice_list else self.choices)
                    + (jinja.fields(expression=self.target) if self.target else [self.answer_field]))
        by_lang = load_by_language(self.data, required, rejects)
        where = self.data.files[0]
        items = []  # (lang, answer index, context ids, [choice ids], [choice lengths in chars])
        for lang, records in by_lang.items():
            for record in records:
                if self.words and lang not in self.words:
                    rejects.add(where, 0, f"no words for language '{lang}' in the task's 'words'", str(record))
                    continue
                try:
                    choices = self._choice_list(record, lang)
                    answer = self._answer_index(record, choices, lang) if choices else None
                    context = jinja.render(self.prompt, record, self._words(lang))
                except jinja.RECORD_ERRORS as e:  # a value the template cannot use (e.g. a non-numeric answer)
                    rejects.add(where, 0, f"template error: {type(e).__name__}", f"{e}: {record}")
                    continue
                if not choices or len(choices) < 2:
                    rejects.add(where, 0, "fewer than two choices", str(record))
                    continue
                if answer is None:
                    rejects.add(where, 0, "answer not among the choices", str(record))
                    continue
                pairs = [lm.split_continuation(context, self.choice_prefix + c) for c in choices]
                items.append((lang, answer, pairs[0][0], [cont for _, cont in pairs], [max(1, len(c)) for c in choices]))
        usable = {lang: [item for item in items if item[0] == lang] for lang in by_lang}
        languages = report_empty_languages(usable, rejects, where)
        scores = lm.choice_loglikelihoods([(ctx, conts) for _, _, ctx, conts, _ in items], desc=f"{self.name} choices")
        tallies = {lang: [0, 0, 0, 0.0] for lang in languages}  # correct, correct_norm, n, Σ 1/k
        outcomes: dict[str, list[int]] = {lang: [] for lang in languages}  # per item, for intervals and paired tests
        for (lang, answer, _, conts, lengths), logprobs in zip(items, scores):
            tally = tallies[lang]
            outcomes[lang].append(int(argmax(logprobs) == answer))
            tally[0] += outcomes[lang][-1]
            tally[1] += int(argmax([lp / n for lp, n in zip(logprobs, lengths)]) == answer)
            tally[2] += 1
            tally[3] += 1 / len(conts)
        return {"languages": {
            lang: {"accuracy": c / n, "accuracy_norm": cn / n, "chance": k / n, "n": n, "outcomes": outcomes[lang]}
            for lang, (c, cn, n, k) in tallies.items()
        }}


def argmax(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)
