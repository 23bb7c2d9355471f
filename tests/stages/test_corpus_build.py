"""End to end: `polyglot-llama corpus build` on the project's sample text plus injected duplicates, junk,
foreign text, PII, a blocklisted URL and malformed lines; checks exactly what is kept, rejected and why."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from polyglot_test_utils import sample_records
from polyglot_llama.cli import main
from polyglot_llama.errors import UserError

RECIPE = """
languages: [ko, en]
steps: [language, foreign_paragraphs, blocklist, gopher_quality, gopher_repetition, fineweb_quality, pii, exact_dedup, minhash_dedup]
lid:
  threshold: {ko: 0.842, en: 0.65}
  min_script_ratio: 0.5
blocklist: {file: BLOCKLIST}
gopher_quality:
  min_avg_word_length: {default: 3, ko: 1}
  max_avg_word_length: {default: 10, ko: 6}
  stop_words:
    default: [the, be, to, of, and, that, have, with]
    ko: [의, 다, 이, 는, 에, 을, 한, 하, 은, 를, 고, 가, 있, 로]
"""


def _jsonl(path: Path, records: list[dict]) -> None:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def _read_gz_jsonl(paths) -> list[dict]:
    return [json.loads(line) for p in sorted(paths) for line in gzip.open(p, "rt", encoding="utf-8")]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("corpus_build")
    raw = root / "raw"
    raw.mkdir()
    ko, en = sample_records("ko"), sample_records("en")
    by_id = {r["id"]: r for r in ko + en}
    (root / "blocklist.txt").write_text("# sites known for personal data\nbadsite.example\n", encoding="utf-8")

    ko_docs = [dict(r) for r in ko[:20]]
    ko_docs.append({"id": "ko-001-copy", "text": by_id["ko-001"]["text"]})
    ko_docs.append({"id": "ko-002-near", "text": "우리 " + by_id["ko-002"]["text"]})
    ko_docs.append({"id": "ko-spam", "text": "오늘의 특가는 지금 바로 구매하세요!\n" * 30})
    banner = "Please accept our cookies to continue reading this article."
    ko_docs.append({"id": "ko-mixed", "text": f"{ko[24]['text']}\n{banner}\n{ko[25]['text']}"})
    _jsonl(raw / "ko.jsonl", ko_docs)

    en_docs = [dict(r) for r in en[:20]]
    en_docs.append({"id": "en-030", "text": by_id["en-030"]["text"], "url": "https://forum.badsite.example/t/1"})
    en_docs.append({"id": "en-031", "text": by_id["en-031"]["text"] + " Contact jane.roe@mail.com or +44 20 7946 0958."})
    en_docs.append({"id": "en-032", "text": by_id["en-032"]["text"], "url": "https://good.example/a"})
    en_docs.append({"id": "en-short", "text": "The quick brown fox jumps over the lazy dog near the river bank today."})
    _jsonl(raw / "en.jsonl.gz", en_docs)

    shouty = "  ".join(by_id["en-005"]["text"].split()).replace(".", "!")  # same normalised text as en-005
    table = [{"id": r["id"], "text": r["text"]} for r in en[39:42]] + [{"id": "en-005-variant", "text": shouty}]
    pq.write_table(pa.Table.from_pylist(table), raw / "more_en.parquet")

    foreign = sample_records("de")[:3] + sample_records("ru")[:3]
    _jsonl(raw / "de_ru.jsonl", foreign)
    (raw / "notes.txt").write_text(f"{ko[44]['text']}\n\n{ko[45]['text']}\n", encoding="utf-8")
    good_line = json.dumps({"id": "ko-047", "text": ko[46]["text"]}, ensure_ascii=False).encode()
    (raw / "bad.jsonl").write_bytes(b"\n".join([
        b'{"id": "bad-json", "text": "unterminated',
        b'{"id": "bad-utf8", "text": "\xff\xfe broken"}',
        good_line,
        b'{"id": "no-text"}',
        b'{"id": "num-text", "text": 42}',
        b'{"id": "empty", "text": "   "}',
        b"[1, 2]",
    ]) + b"\n")

    recipe = root / "recipe.yaml"
    recipe.write_text(RECIPE.replace("BLOCKLIST", str(root / "blocklist.txt")), encoding="utf-8")
    out = root / "out"
    args = ["corpus", "build", "--recipe", str(recipe), "--input", str(raw / "*"), "--output", str(out),
            "--tasks", "2", "--workers", "1", "--parquet", "true"]
    assert main(args) == 0
    return out, recipe


def _rejected(out: Path) -> dict[str, tuple[str, str]]:
    return {r["id"]: (r["step"], r["reason"]) for r in _read_gz_jsonl(out.glob("rejected/*/*.jsonl.gz"))}


def test_kept_and_rejected_exactly(corpus):
    out, _ = corpus
    kept = {r["id"]: r for r in _read_gz_jsonl(out.glob("kept/*.jsonl.gz"))}
    rejected = _rejected(out)
    bad = str(Path(out).parent / "raw" / "bad.jsonl")

    # one of each exact pair and of the near-duplicate pair survives; which one is the dedup's choice
    assert len({"en-005", "en-005-variant"} & kept.keys()) == 1
    assert len({"ko-002", "ko-002-near"} & kept.keys()) == 1
    exact_loser = ({"en-005", "en-005-variant"} - kept.keys()).pop()
    near_loser = ({"ko-002", "ko-002-near"} - kept.keys()).pop()

    expected_kept = ({f"ko-{i:03d}" for i in range(1, 21)} - {"ko-002"}
                     | {f"en-{i:03d}" for i in range(1, 21)} - {"en-005"}
                     | {"en-031", "en-032", "en-040", "en-041", "en-042", "ko-047", "notes.txt/1", "notes.txt/2", "ko-mixed"}
                     | ({"ko-002", "ko-002-near", "en-005", "en-005-variant"} - {exact_loser, near_loser}))
    assert set(kept) == expected_kept

    expected_rejected = {
        f"{bad}:1": ("read", "malformed JSON: Invalid control character at"),
        f"{bad}:2": ("read", "invalid UTF-8"),
        f"{bad}:4": ("read", "missing or non-string field 'text'"),
        f"{bad}:5": ("read", "missing or non-string field 'text'"),
        "empty": ("read", "empty text"),
        f"{bad}:7": ("read", "record is not a JSON object"),
        **{r["id"]: ("language", "other_language") for r in sample_records("de")[:3] + sample_records("ru")[:3]},
        "en-030": ("blocklist", "blocklisted_domain"),
        "en-short": ("gopher_quality", "gopher_short_doc"),
        "ko-spam": ("gopher_repetition", "dup_line_frac"),
        "ko-001-copy": ("exact_dedup", "exact_duplicate"),
        exact_loser: ("exact_dedup", "exact_duplicate"),
        near_loser: ("minhash_dedup", "near_duplicate"),
    }
    assert rejected == expected_rejected

    # metadata written for later stages: language tags, cluster sizes for upsampling
    assert kept["ko-003"]["lang"] == "ko" and kept["ko-003"]["language_score"] >= 0.842
    assert kept["en-003"]["lang"] == "en"
    assert kept["ko-001"]["duplicate_count"] == 1
    survivor = ({"ko-002", "ko-002-near"} - {near_loser}).pop()
    assert kept[survivor]["minhash_cluster_size"] == 2
    assert kept["ko-003"]["minhash_cluster_size"] == 1
    # the English paragraph of a Korean page is dropped, the Korean ones stay
    assert kept["ko-mixed"]["text"] == f"{sample_records('ko')[24]['text']}\n{sample_records('ko')[25]['text']}"
    assert kept["ko-mixed"]["metadata"]["foreign_lines_removed"] == 1
    # PII masked in kept text
    assert "jane.roe@mail.com" not in kept["en-031"]["text"] and "email@example.com" in kept["en-031"]["text"]
    assert "7946" not in kept["en-031"]["text"] and "+1-555-0100" in kept["en-031"]["text"]
    # Parquet has the same documents
    parquet_ids = {i for p in out.glob("kept/*.parquet") for i in pq.read_table(p)["id"].to_pylist()}
    assert parquet_ids == set(kept)


def test_stats_add_up(corpus):
    out, _ = corpus
    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    steps = {s["step"]: s for s in stats["steps"]}
    assert list(steps) == ["read", "lid", "language", "foreign_paragraphs", "blocklist", "gopher_quality", "gopher_repetition",
                           "fineweb_quality", "pii", "exact_dedup", "minhash_dedup"]
    for s in stats["steps"]:
        assert s["docs_in"] == s["docs_kept"] + s["docs_rejected"], s["step"]
        assert s["chars_in"] >= s["chars_kept"]
        for lang, v in s["by_language"].items():
            assert v["docs_in"] == v["docs_kept"] + v["docs_rejected"], (s["step"], lang)
    for before, after in zip(stats["steps"], stats["steps"][1:]):
        assert after["docs_in"] == before["docs_kept"], after["step"]
    rejected = _rejected(out)
    assert stats["documents_in"] == 24 + 24 + 4 + 6 + 2 + 7
    assert stats["documents_kept"] + len(rejected) == stats["documents_in"]
    assert stats["documents_rejected"] == len(rejected)
    assert steps["read"]["rejected_by_reason"]["missing or non-string field 'text'"] == 2
    assert steps["language"]["by_language"]["ru"]["docs_rejected"] == 3
    assert steps["read"]["by_language"].keys() == {"und"}  # language is known only after the LID step
    assert steps["lid"]["by_language"]["ko"]["docs_kept"] == 20 + 4 + 3  # samples, injected, notes.txt + bad.jsonl
    assert steps["foreign_paragraphs"]["extra"] == {"lines_removed|ko": 1}
    assert stats["kept_by_language"]["ko"]["docs"] == sum(1 for r in _read_gz_jsonl(out.glob("kept/*.jsonl.gz"))
                                                          if r["lang"] == "ko")
    assert steps["pii"]["extra"] == {"masked_docs|email": 1, "masked_docs|phone": 1}
    md = (out / "stats.md").read_text(encoding="utf-8")
    assert "| gopher_repetition |" in md and "dup_line_frac 1" in md


def test_resume_skips_finished_tasks_and_rejects_changed_recipe(corpus, tmp_path):
    out, recipe = corpus
    raw = out.parent / "raw"
    shard0, shard1 = out / "kept" / "00000.jsonl.gz", out / "kept" / "00001.jsonl.gz"
    before = {p: p.stat().st_mtime_ns for p in (shard0, shard1)}
    content1 = _read_gz_jsonl([shard1])
    # simulate a run killed during task 1 of the write stage: its marker and output are missing
    (out / "work" / "logs" / "write" / "completions" / "00001").unlink()
    shard1.unlink()
    (out / "stats.json").unlink()
    args = ["corpus", "build", "--recipe", str(recipe), "--input", str(raw / "*"), "--output", str(out),
            "--tasks", "2", "--workers", "1", "--parquet", "true"]
    assert main(args) == 0
    assert shard0.stat().st_mtime_ns == before[shard0]  # finished task not redone
    assert _read_gz_jsonl([shard1]) == content1  # redone task gives the same documents
    assert json.loads((out / "stats.json").read_text())["documents_kept"] == len(
        _read_gz_jsonl(out.glob("kept/*.jsonl.gz")))

    from polyglot_llama.cli import resolve

    cfg, run = resolve("corpus build", [*args[2:], "--set", "lid.threshold=0.9"])
    with pytest.raises(UserError, match="different recipe.*lid"):
        run(cfg)


def test_bad_recipe_fails_at_start(tmp_path, capsys):
    raw = tmp_path / "in.jsonl"
    _jsonl(raw, sample_records("ko")[:2])
    base = ["corpus", "build", "--input", str(raw), "--output", str(tmp_path / "o"), "--languages", "ko"]
    assert main(base + ["--steps", "language", "spellcheck"]) == 2
    assert "unknown step 'spellcheck'" in capsys.readouterr().err
    assert main(base + ["--set", "gopher_quality.min_words=5"]) == 2
    assert "unknown key 'gopher_quality.min_words'" in capsys.readouterr().err
    assert main(["corpus", "build", "--input", str(raw), "--output", str(tmp_path / "o"), "--languages", "tlh"]) == 2
    assert "cannot recognise 'tlh'" in capsys.readouterr().err
    assert not (tmp_path / "o" / "kept").exists()
    assert os.listdir(tmp_path) == ["in.jsonl"]


def _warc(path: Path, ko: list[str]) -> None:
    """A gzipped WARC with a warcinfo record, an HTML page (two Korean paragraphs) and a PNG response."""
    from io import BytesIO

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        writer.write_record(writer.create_warcinfo_record("test.warc.gz", {"software": "polyglot-llama test"}))
        page = (f"<html><head><title>뉴스</title></head><body><nav><a href='/'>홈</a></nav><article>"
                f"<p>{ko[0]}</p><p>{ko[1]}</p></article></body></html>").encode()
        http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.0")
        writer.write_record(writer.create_warc_record("https://news.example/ko/1", "response", payload=BytesIO(page),
                                                      http_headers=http))
        png = StatusAndHeaders("200 OK", [("Content-Type", "image/png")], protocol="HTTP/1.0")
        writer.write_record(writer.create_warc_record("https://news.example/logo.png", "response",
                                                      payload=BytesIO(b"\x89PNG...."), http_headers=png))


def _wet(path: Path, text: str) -> None:
    from io import BytesIO

    from warcio.warcwriter import WARCWriter

    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=False)
        writer.write_record(writer.create_warc_record("https://blog.example/post", "conversion",
                                                      payload=BytesIO(text.encode()), warc_content_type="text/plain"))


def test_input_formats_and_damaged_shards(tmp_path, monkeypatch):
    import zstandard

    def no_manager(*args, **kwargs):
        raise AssertionError("a 1-worker build started a multiprocess.Manager (a forked process per stage)")

    monkeypatch.setattr("multiprocess.Manager", no_manager)

    ko = [r["text"] for r in sample_records("ko")]
    raw = tmp_path / "raw"
    (raw / "books").mkdir(parents=True)
    _warc(raw / "crawl.warc.gz", ko)
    _wet(raw / "crawl.wet", ko[2] + "\r\n" + ko[3])
    (raw / "one.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(
        (json.dumps({"id": "zst-1", "text": ko[4]}, ensure_ascii=False) + "\n").encode()))
    (raw / "books" / "chapter.txt").write_text(ko[5] + "\n", encoding="utf-8")
    whole = gzip.compress("".join(json.dumps({"id": f"gz-{i}", "text": ko[6 + i % 30]}, ensure_ascii=False) + "\n"
                                  for i in range(3000)).encode())
    (raw / "cut.jsonl.gz").write_bytes(whole[: len(whole) // 2])  # truncated download
    (raw / "fake.jsonl.gz").write_bytes(b"this is not gzip at all\n" * 10)
    out = tmp_path / "out"
    args = ["corpus", "build", "--input", str(raw / "*.*"), str(raw / "books"), "--output", str(out),
            "--languages", "ko", "--steps", "language", "--tasks", "2", "--workers", "1"]
    assert main(args) == 0
    kept = {r["id"]: r for r in _read_gz_jsonl(out.glob("kept/*.jsonl.gz"))}
    html = [r for r in kept.values() if r["metadata"].get("url") == "https://news.example/ko/1"]
    assert len(html) == 1 and html[0]["text"] == f"{ko[0]}\n{ko[1]}"  # main text only, no navigation
    wet = [r for r in kept.values() if r["metadata"].get("url") == "https://blog.example/post"]
    assert len(wet) == 1 and wet[0]["text"] == f"{ko[2]}\n{ko[3]}"  # CRLF became LF
    assert kept["zst-1"]["text"] == ko[4] and kept["chapter.txt/1"]["text"] == ko[5]
    read_before_cut = {i for i in kept if i.startswith("gz-")}
    assert 0 < len(read_before_cut) < 3000  # what came before the damage is used
    rejected = _rejected(out)
    assert rejected[f"{raw / 'crawl.warc.gz'}:3"] == ("read", "not HTML (image/png)")
    quarantined = [json.loads(line) for path in (out / "rejected" / "quarantined_files").glob("*.jsonl")
                   for line in path.read_text().splitlines()]
    assert sorted(q["file"] for q in quarantined) == [str(raw / "cut.jsonl.gz"), str(raw / "fake.jsonl.gz")]
    assert all(q["reason"].startswith(("truncated compressed file", "corrupt compressed file")) for q in quarantined)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["quarantined_files"] == 2
    assert stats["quarantined_bytes"] == (raw / "cut.jsonl.gz").stat().st_size + (raw / "fake.jsonl.gz").stat().st_size
    assert "Quarantined" in (out / "stats.md").read_text()
