"""Language ID as two datatrove steps: tag first (`LanguageTagger`), filter later (`LanguageFilter`).

The tagger writes ``doc.metadata["language"]`` (project code, e.g. ``ko``) and ``["language_score"]``
(fastText probability); the filter keeps documents of the recipe's languages whose score reaches that
language's threshold and, optionally, whose letters are mostly in the language's script (a ``ko``
document must be mostly Hangul: catches romanised or mislabelled text that LID scores confidently).
"""

from __future__ import annotations

import regex
from datatrove.data import Document, DocumentsPipeline

from .accounting import AccountedStep, CorpusFilter, batches
from .lid import load_lid_model

# Scripts a language's letters are expected in. Languages not listed skip the script check.
EXPECTED_SCRIPTS: dict[str, tuple[str, ...]] = {
    "ko": ("Hangul",), "ja": ("Hiragana", "Katakana", "Han"), "zh": ("Han",), "yue": ("Han",),
    "ru": ("Cyrillic",), "uk": ("Cyrillic",), "bg": ("Cyrillic",), "sr": ("Cyrillic", "Latin"),
    "ar": ("Arabic",), "fa": ("Arabic",), "ur": ("Arabic",), "he": ("Hebrew",), "el": ("Greek",),
    "hi": ("Devanagari",), "mr": ("Devanagari",), "ne": ("Devanagari",), "bn": ("Bengali",),
    "ta": ("Tamil",), "te": ("Telugu",), "th": ("Thai",), "ka": ("Georgian",), "hy": ("Armenian",),
    "en": ("Latin",), "de": ("Latin",), "fr": ("Latin",), "es": ("Latin",), "it": ("Latin",),
    "pt": ("Latin",), "nl": ("Latin",), "pl": ("Latin",), "tr": ("Latin",), "vi": ("Latin",),
    "id": ("Latin",), "sw": ("Latin",),
}
LID_BATCH = 256  # documents predicted in a row (~270 KB of text)
# Runs, not single characters: the summed lengths of the maximal runs count the same characters, with one
# match object per word instead of one per letter.
_LETTER_RUN = regex.compile(r"\p{L}+")
_SCRIPT_RUNS = {
    lang: regex.compile("[" + "".join(rf"\p{{Script={s}}}" for s in scripts) + "]+")
    for lang, scripts in EXPECTED_SCRIPTS.items()
}


def script_ratio(text: str, language: str) -> float:
    """Share of letters in ``language``'s expected scripts (1.0 when unknown or no letters)."""
    pattern = _SCRIPT_RUNS.get(language)
    if pattern is None:
        return 1.0
    letters = sum(map(len, _LETTER_RUN.findall(text)))
    return sum(map(len, pattern.findall(text))) / letters if letters else 1.0


class LanguageTagger(AccountedStep):
    """Tags ``language`` and ``language_score`` with a fastText LID model; keeps every document."""

    type = "🏷 - TAGGER"
    name = "lid"
    step_name = "lid"

    def __init__(self, model_path: str = ""):
        super().__init__()
        self.model_path = model_path
        self._model = None

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        model = load_lid_model(self.model_path or None)  # loaded in the worker, once per process
        # A batch of predictions in a row: between two documents the rest of the pipeline evicts the model's
        # tables from the CPU caches, which made each prediction about twice as slow as in a plain loop.
        for batch in batches(data, LID_BATCH):
            with self.track_time():
                for doc in batch:
                    language, score = model.predict(doc.text)[0]
                    doc.metadata["language"] = language
                    doc.metadata["language_score"] = round(score, 4)
            for doc in batch:
                self.count_in(doc)  # after tagging, so this step's per-language rows show what LID found
                self.count_kept(doc)
                yield doc


class LanguageFilter(CorpusFilter):
    """Keeps documents of ``languages`` with ``language_score >= threshold[lang]`` and enough own script."""

    name = "language"
    step_name = "language"

    def __init__(self, languages: list[str], thresholds: dict[str, float], min_script_ratio: dict[str, float],
                 rejected_folder: str | None = None):
        super().__init__(rejected_folder)
        self.languages = set(languages)
        self.thresholds, self.min_script_ratio = thresholds, min_script_ratio

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        language = doc.metadata["language"]
        if language not in self.languages:
            return False, "other_language"
        if doc.metadata["language_score"] < self.thresholds[language]:
            return False, "low_language_score"
        if self.min_script_ratio[language] > 0:
            ratio = script_ratio(doc.text, language)
            doc.metadata["script_ratio"] = round(ratio, 4)
            if ratio < self.min_script_ratio[language]:
                return False, "wrong_script"
        return True


class ForeignParagraphFilter(CorpusFilter):
    """Drops the lines of a document that LID confidently assigns to another language than the document's.

    Web pages in the target language often carry navigation, cookie banners or quotes in English. Lines
    shorter than ``min_chars`` are kept (too short for reliable LID); a document left with no text is
    rejected. Optional: add ``foreign_paragraphs`` to a recipe's steps after ``language``.
    """

    name = "foreign_paragraphs"
    step_name = "foreign_paragraphs"

    def __init__(self, model_path: str = "", threshold: float = 0.8, min_chars: int = 40,
                 rejected_folder: str | None = None):
        super().__init__(rejected_folder)
        self.model_path, self.threshold, self.min_chars = model_path, threshold, min_chars

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        model = load_lid_model(self.model_path or None)  # cached per process
        language = doc.metadata["language"]
        kept, removed = [], 0
        for line in doc.text.splitlines(keepends=True):
            if len(line.strip()) >= self.min_chars:
                other, score = model.predict(line)[0]
                if other != language and score >= self.threshold:
                    removed += 1
                    continue
            kept.append(line)
        if removed:
            self.stat_update(f"lines_removed|{language}", value=removed)
            doc.text = "".join(kept).strip()
            doc.metadata["foreign_lines_removed"] = removed
        return bool(doc.text.strip()) or (False, "only_foreign_paragraphs")
