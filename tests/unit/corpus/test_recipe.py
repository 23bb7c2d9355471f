"""Recipes: every shipped one loads; per-language values resolve; mistakes fail at start with the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from polyglot_llama.config import from_dict, load_config
from polyglot_llama.corpus.recipe import CorpusBuildConfig, GopherQualitySection, for_language
from polyglot_llama.errors import UserError

RECIPES = Path(__file__).resolve().parents[3] / "data_recipes"


@pytest.mark.parametrize("lang", ["ko", "ja", "zh", "th", "de", "en"])
def test_shipped_recipes_load(lang):
    cfg = load_config(CorpusBuildConfig, RECIPES / f"{lang}.yaml", {"input": ["x"], "output": "y"})
    assert cfg.languages == [lang]
    assert cfg.minhash.n_grams == 5 and cfg.minhash.num_buckets == 14 and cfg.minhash.hashes_per_bucket == 8
    assert 0.5 <= for_language(cfg.lid, lang)["threshold"] < 1
    assert for_language(cfg.gopher_quality, lang)["stop_words"]


def test_per_language_values():
    section = from_dict(GopherQualitySection, {"min_doc_words": {"default": 50, "jpn": 0}, "min_stop_words": 3})
    assert section.min_doc_words == {"default": 50, "ja": 0}  # language keys normalised
    assert for_language(section, "ja")["min_doc_words"] == 0
    assert for_language(section, "ko")["min_doc_words"] == 50
    assert for_language(section, "ko")["min_stop_words"] == 3
    no_default = from_dict(GopherQualitySection, {"min_doc_words": {"ja": 0}})
    assert for_language(no_default, "ko")["min_doc_words"] == 50  # the field's own default


@pytest.mark.parametrize("data, message", [
    ({}, "languages: give at least one language"),
    ({"languages": ["ko"], "steps": ["language", "spellcheck"]}, "unknown step 'spellcheck'"),
    ({"languages": ["ko"], "steps": ["minhash_dedup", "language"]}, "list them after every filter"),
    ({"languages": ["ko"], "steps": ["language", "blocklist"]}, "blocklist.file"),
    ({"languages": ["ko"], "gopher_quality": {"min_words": 3}}, "unknown key 'gopher_quality.min_words'"),
    ({"languages": ["ko"], "lid": {"threshold": "high"}}, "lid.threshold"),
    ({"languages": ["k0"]}, "not an ISO 639 code"),
    ({"languages": ["ko"], "executor": "spark"}, "key 'executor'"),
    ({"languages": ["ko"], "executor": "slurm"}, "slurm.partition"),
])
def test_mistakes_name_the_key(data, message):
    with pytest.raises(UserError, match=message):
        from_dict(CorpusBuildConfig, data)


def test_languages_normalised_and_workers_capped():
    cfg = from_dict(CorpusBuildConfig, {"languages": ["kor", "KO", "en-US"], "tasks": 3, "workers": 8})
    assert cfg.languages == ["ko", "en"]
    assert cfg.local_workers == 3
