"""Per-language quality filters, the domain blocklist and per-step accounting with rejected documents."""

from __future__ import annotations

import gzip
import json

import pytest
from datatrove.data import Document

from polyglot_test_utils import sample_texts
from polyglot_llama.corpus.language_steps import ForeignParagraphFilter, LanguageFilter, script_ratio
from polyglot_llama.corpus.quality_steps import DomainBlocklistFilter, PerLanguageFilter, read_blocklist, url_domain
from polyglot_llama.errors import UserError


def _doc(text: str, language: str, **metadata) -> Document:
    return Document(text=text, id=f"{language}-{len(text)}", metadata={"language": language, **metadata})


def test_parameters_follow_the_document_language():
    gopher = PerLanguageFilter("gopher_quality", {
        "default": {"min_doc_words": 50, "min_avg_word_length": 3, "stop_words": ["the", "and", "of", "to"]},
        "ko": {"min_doc_words": 50, "min_avg_word_length": 1, "stop_words": ["의", "는", "이", "에", "을", "다"]},
    })
    ko, en = sample_texts("ko")[0], sample_texts("en")[0]
    assert gopher.filter(_doc(ko, "ko")) is True
    assert gopher.filter(_doc(en, "en")) is True
    # a Korean text judged as English fails: spaCy's English tokenizer splits only at spaces (Kiwi splits
    # eojeol into morphemes), which leaves fewer than 50 words
    assert gopher.filter(_doc(ko, "en")) == (False, "gopher_short_doc")
    assert gopher.filter(_doc("Too short and to the point.", "en")) == (False, "gopher_short_doc")


def test_blocklist(tmp_path):
    listing = tmp_path / "block.txt"
    listing.write_text("# people-search sites\nBadSite.example  # trailing comment\nwww.other.example\n")
    domains = read_blocklist(str(listing))
    assert domains == {"badsite.example", "other.example"}
    assert url_domain("HTTPS://www.News.BadSite.example:8080/a?b") == "news.badsite.example"
    step = DomainBlocklistFilter(domains)
    assert step.filter(_doc("x", "en", url="https://news.badsite.example/p")) == (False, "blocklisted_domain")
    assert step.filter(_doc("x", "en", url="other.example/page")) == (False, "blocklisted_domain")
    assert step.filter(_doc("x", "en", url="https://notbadsite.example/")) is True
    assert step.filter(_doc("x", "en")) is True
    with pytest.raises(UserError, match="not found"):
        read_blocklist(str(tmp_path / "missing.txt"))


def test_language_filter_and_script_ratio():
    assert script_ratio("한국어 text", "ko") == pytest.approx(3 / 7)
    assert script_ratio("12345 !!", "ko") == 1.0
    # several expected scripts, each in a run of its own: Han 3, Hiragana 1, Katakana 4 of 11 letters
    assert script_ratio("日本語のテキストABC", "ja") == pytest.approx(8 / 11)
    assert script_ratio("Ελληνικά, 한국어 и русский", "ru") == pytest.approx(8 / 19)  # Greek 8, Hangul 3, Cyrillic 1 + 7
    step = LanguageFilter(["ko"], {"ko": 0.8}, {"ko": 0.5})
    ko = sample_texts("ko")[0]
    assert step.filter(_doc(ko, "ko", language_score=0.95)) is True
    assert step.filter(_doc(ko, "ko", language_score=0.5)) == (False, "low_language_score")
    assert step.filter(_doc(ko, "ja", language_score=0.99)) == (False, "other_language")
    assert step.filter(_doc("annyeonghaseyo yeoreobun bangapseumnida", "ko", language_score=0.9)) == (
        False, "wrong_script")


def test_accounting_and_rejected_records(tmp_path):
    step = PerLanguageFilter("gopher_quality", {"default": {"min_doc_words": 5, "min_stop_words": 0}}, rejected_folder=str(tmp_path))
    docs = [_doc("one two three four five six seven", "en"), _doc("too short", "de"), _doc("short too", "en")]
    kept = list(step.run(iter(docs), rank=3))
    assert [d.text for d in kept] == ["one two three four five six seven"]
    stats = {k: v.total for k, v in step.stats.stats.items()}
    assert stats["docs_in|en"] == 2 and stats["docs_kept|en"] == 1
    assert stats["docs_rejected|en|gopher_short_doc"] == 1 and stats["docs_rejected|de|gopher_short_doc"] == 1
    assert stats["chars_rejected|de|gopher_short_doc"] == len("too short")
    with gzip.open(tmp_path / "gopher_quality" / "00003.jsonl.gz", "rt") as f:
        rejected = [json.loads(line) for line in f]
    assert [(r["step"], r["reason"], r["language"], r["text"]) for r in rejected] == [
        ("gopher_quality", "gopher_short_doc", "de", "too short"),
        ("gopher_quality", "gopher_short_doc", "en", "short too")]


def test_foreign_paragraphs_are_dropped_from_mixed_documents():
    ko, en = sample_texts("ko"), sample_texts("en")
    step = ForeignParagraphFilter(threshold=0.8, min_chars=40)
    doc = _doc(f"{ko[0]}\n{en[0]}\nOK\n{ko[1]}", "ko")
    assert step.filter(doc) is True
    assert doc.text == f"{ko[0]}\nOK\n{ko[1]}"  # the English line is gone; the 2-character line stays
    assert doc.metadata["foreign_lines_removed"] == 1
    only_english = _doc(f"{en[0]}\n{en[1]}", "ko")
    assert step.filter(only_english) == (False, "only_foreign_paragraphs")
    untouched = _doc(f"{ko[2]}\n{ko[3]}", "ko")
    assert step.filter(untouched) is True and untouched.text == f"{ko[2]}\n{ko[3]}"


def test_each_document_is_segmented_once_for_all_word_filters(monkeypatch):
    """The repetition, FineWeb and Gopher quality filters share one segmentation per document (datatrove memoises
    split_into_words per text and tokenizer object; word_tokenizer hands every filter the same object)."""
    from pathlib import Path

    from polyglot_llama.config import load_config
    from polyglot_llama.corpus.build import _filter_steps
    from polyglot_llama.corpus.recipe import CorpusBuildConfig
    from polyglot_llama.corpus.words import EojeolKiwiTokenizer

    calls = []
    original = EojeolKiwiTokenizer.word_tokenize
    monkeypatch.setattr(EojeolKiwiTokenizer, "word_tokenize", lambda self, text: calls.append(text) or original(self, text))
    recipe = Path(__file__).resolve().parents[3] / "data_recipes" / "ko.yaml"
    cfg = load_config(CorpusBuildConfig, recipe, {"input": ["-"], "output": "-", "segmenter": "datatrove_eojeol"})
    filters = [s for s in _filter_steps(cfg, ["-"], None) if isinstance(s, PerLanguageFilter)]
    assert [f.kind for f in filters] == ["gopher_repetition", "fineweb_quality", "gopher_quality"]
    texts = sample_texts("ko")
    docs = [_doc("\n".join(texts[i:i + 4]), "ko") for i in range(0, 24, 4)]  # more than datatrove's memo holds (5)
    stream = iter(docs)
    for f in filters:  # chained as in the pipeline
        stream = f.run(stream)
    assert [d.id for d in stream] == [d.id for d in docs]
    assert calls == [doc.text for doc in docs]



def test_step_statistics_are_datatroves_stat_updates(tmp_path):
    """The per-language counts equal what datatrove's stat_update gives for the same documents, field by field."""
    import copy
    import dataclasses

    from datatrove.executor.base import ExecutorJSONEncoder
    from datatrove.pipeline.base import PipelineStep
    from datatrove.utils.stats import Stats

    step = LanguageFilter(["ko", "ja"], {"ko": 0.5, "ja": 0.5}, {"ko": 0.0, "ja": 0.0}, str(tmp_path))
    docs = [Document(text="가" * (i + 1), id=str(i), metadata={"language": lang, "language_score": score})
            for i, (lang, score) in enumerate([("ko", 0.9), ("ko", 0.1), ("ja", 0.8), ("en", 0.9), ("ko", 0.7),
                                               ("ko", 0.2), ("ja", 0.6)])]
    copied = copy.deepcopy(step)  # as the executor runs it: a copy, whose Stats are fresh objects
    saved_before = json.dumps(copied, cls=ExecutorJSONEncoder)
    list(copied.run(iter(docs)))

    class Reference(PipelineStep):
        name = "language"

        def run(self, data, rank=0, world_size=1):
            return data

    reference = Reference()
    for doc in docs:
        lang, keep = doc.metadata["language"], copied.filter(doc)
        updates = [("in", lang)] + ([("kept", lang)] if keep is True else [("rejected", f"{lang}|{keep[1]}")])
        for event, suffix in updates:
            reference.stat_update(f"docs_{event}|{suffix}")
            reference.stat_update(f"chars_{event}|{suffix}", value=len(doc.text))
    def fields(stats):  # every field of every metric (n, total, mean, min, max, variance, unit), not the summary
        return {key: dataclasses.asdict(metric) for key, metric in stats.stats.items()}

    assert fields(copied.stats) == fields(reference.stats)
    assert fields(copied.stats)["docs_rejected|ko|low_language_score"]["total"] == 2
    assert fields(copied.stats)["chars_in|ko"]["max"] == 6
    assert fields(step.stats) == {}  # the original was not counted into
    # datatrove saves each step's attributes as JSON (executor.json): counting adds nothing there
    assert json.dumps(copied, cls=ExecutorJSONEncoder) == saved_before
    copied.stats = Stats("fresh")  # a step given new Stats counts into those
    list(copied.run(iter(docs[:1])))
    assert fields(copied.stats)["docs_in|ko"]["n"] == 1
