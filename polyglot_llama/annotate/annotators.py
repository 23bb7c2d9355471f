"""`polyglot-llama annotate add-annotator`: create an annotator (or admin) and print their login token once.

Only the token's hash is stored; a lost token cannot be recovered, so add the person again under a new name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..errors import UserError
from ..languages import normalize_language
from .i18n import UI_LANGS
from .store import Store


@dataclass
class AddAnnotatorConfig:
    db: str
    """The annotation database (SQLite file; created if missing)."""
    name: str
    """A unique name, shown in the admin view."""
    role: Literal["annotator", "admin"] = "annotator"
    """admin: may also open the admin view (progress, agreement, flagged items)."""
    langs: list[str] = field(default_factory=list)
    """Languages of the items this annotator is given (empty: all)."""
    ui_lang: str = "en"
    """Language of the interface."""

    def __post_init__(self):
        if not self.name.strip() or len(self.name) > 100:
            raise UserError("key 'name' must be 1-100 characters")
        self.langs = [normalize_language(lang) for lang in self.langs]
        if self.ui_lang not in UI_LANGS:
            raise UserError(f"key 'ui_lang' is {self.ui_lang!r}; the interface exists in {', '.join(UI_LANGS)}")


def run(cfg: AddAnnotatorConfig) -> dict:
    token = Store(cfg.db, create=True).add_annotator(cfg.name.strip(), cfg.role, tuple(cfg.langs), cfg.ui_lang)
    print(f"annotate add-annotator: {cfg.role} {cfg.name!r} added; give them this token (shown only once): {token}")
    return {"db": cfg.db, "name": cfg.name, "role": cfg.role, "token": token}
