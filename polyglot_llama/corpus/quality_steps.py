"""Quality and blocklist filters: datatrove's Gopher/FineWeb heuristics with per-language parameters.

datatrove's filters take one language and one set of thresholds per instance. `PerLanguageFilter`
holds one instance per language (built on first use in the worker, with that language's parameters and
word tokenizer) and sends each document to the instance for its ``metadata["language"]``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from datatrove.data import Document
from datatrove.pipeline.filters.fineweb_quality_filter import FineWebQualityFilter

from ..errors import UserError
from .accounting import UNDETERMINED, CorpusFilter
from .gopher_quality import FastGopherQualityFilter
from .repetition import FastGopherRepetitionFilter
from .words import word_tokenizer

DATATROVE_FILTERS = {
    "gopher_repetition": FastGopherRepetitionFilter,  # datatrove's decisions, several times faster
    "gopher_quality": FastGopherQualityFilter,  # datatrove's decisions, without per-character Python loops
    "fineweb_quality": FineWebQualityFilter,
}


class PerLanguageFilter(CorpusFilter):
    """Applies datatrove filter ``kind`` with ``params[lang]`` (falling back to ``params["default"]``)."""

    def __init__(self, kind: str, params: dict[str, dict], segmenter: str = "datatrove",
                 rejected_folder: str | None = None):
        self.name = self.step_name = kind  # before super().__init__(), which names the step's Stats
        super().__init__(rejected_folder)
        self.kind, self.params, self.segmenter = kind, params, segmenter
        self._filters: dict[str, object] = {}

    def _filter_for(self, language: str):
        if language not in self._filters:
            params = self.params.get(language, self.params["default"])
            tokenizer_language = language if language != UNDETERMINED else "en"
            self._filters[language] = DATATROVE_FILTERS[self.kind](
                **params, language=word_tokenizer(tokenizer_language, self.segmenter)
            )
        return self._filters[language]

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return self._filter_for(doc.metadata.get("language", UNDETERMINED)).filter(doc)


def read_blocklist(path: str) -> frozenset[str]:
    """Domains from a text file: one per line, ``#`` comments; ``www.`` and case are ignored."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"blocklist.file: {file} not found; give a text file with one domain per line")
    domains = set()
    for line in file.read_text(encoding="utf-8").splitlines():
        domain = line.split("#", 1)[0].strip().lower().removeprefix("www.")
        if domain:
            domains.add(domain)
    return frozenset(domains)


def url_domain(url: str) -> str:
    """Host of ``url`` (scheme optional), lower-case, without ``www.`` and port."""
    host = urlsplit(url if "//" in url else f"//{url}").hostname or ""
    return host.lower().removeprefix("www.")


class DomainBlocklistFilter(CorpusFilter):
    """Drops documents whose URL's domain, or any parent domain, is on the blocklist."""

    name = "blocklist"
    step_name = "blocklist"

    def __init__(self, domains: frozenset[str], url_field: str = "url", rejected_folder: str | None = None):
        super().__init__(rejected_folder)
        self.domains, self.url_field = domains, url_field

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        url = doc.metadata.get(self.url_field)
        if not isinstance(url, str) or not url:
            return True
        parts = url_domain(url).split(".")
        # news.example.com is blocked by example.com; the bare TLD ("com") is never checked
        if any(".".join(parts[i:]) in self.domains for i in range(len(parts) - 1)):
            return False, "blocklisted_domain"
        return True
