"""`corpus mix` end to end on the bundled sample text: plan, draw, shards, report, errors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from polyglot_llama.cli import main
from polyglot_llama.config import load_config
from polyglot_llama.corpus.mix import MixConfig, run
from polyglot_llama.errors import UserError
from polyglot_llama.model.checkpoint import load_tokenizer
from polyglot_test_utils import SAMPLE_DIR, sample_records

REPO = Path(__file__).resolve().parents[3]


def _write_jsonl(path: Path, records: list[dict]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return str(path)


def _config(tokenizer, output, sources, **kwargs) -> MixConfig:
    return load_config(MixConfig, overrides={"tokenizer": str(tokenizer), "output": str(output), "sources": sources, **kwargs})


def _read_mixture(output: Path) -> list[dict]:
    records = []
    for shard in sorted((output / "mixture").glob("mixture-*.jsonl.gz")):
        with gzip.open(shard, "rt", encoding="utf-8") as f:
            records += [json.loads(line) for line in f]
    return records


def _sources():
    return [{"name": "en_sample", "lang": "eng", "paths": [str(SAMPLE_DIR / "en.jsonl")]},
            {"name": "ko_sample", "lang": "kor_Hang", "paths": [str(SAMPLE_DIR / "ko.jsonl")]}]


def test_mixture_matches_plan_and_report(tmp_path, en_tokenizer_dir, monkeypatch):
    import polyglot_llama.corpus.mix as mix_module

    monkeypatch.setattr(mix_module, "MAX_OPEN_BUCKETS", 2)  # 3 shards from 2 buckets: the split path
    cfg = _config(en_tokenizer_dir, tmp_path / "mix", _sources(), method="temperature", alpha=0.3,
                  total_tokens=40_000, tokens_per_shard=15_000)
    summary = run(cfg)
    report = json.loads((tmp_path / "mix" / "report.json").read_text())
    records = _read_mixture(tmp_path / "mix")
    assert summary["shards"] == 3 and len(list((tmp_path / "mix" / "mixture").iterdir())) == 3

    # Records keep their language and source; the drawn tokens, re-measured, are what the report says.
    tok = load_tokenizer(en_tokenizer_dir)
    drawn = {"en": 0, "ko": 0}
    for r in records:
        assert r["source"] == {"en": "en_sample", "ko": "ko_sample"}[r["lang"]]
        drawn[r["lang"]] += len(tok(r["text"], add_special_tokens=False)["input_ids"])
    assert drawn == {lang: v["tokens_drawn"] for lang, v in report["languages"].items()}

    # Planned split: p ∝ n^0.3 of the measured available tokens.
    n = {lang: v["tokens_available"] for lang, v in report["languages"].items()}
    p_en = n["en"] ** 0.3 / (n["en"] ** 0.3 + n["ko"] ** 0.3)
    assert report["languages"]["en"]["planned_share"] == pytest.approx(p_en)
    # Drawn tokens match the plan within sampling error: 4σ of the stochastic rounding of each document.
    for lang, v in report["languages"].items():
        doc_tokens = np.array([len(ids) for ids in tok([r["text"] for r in sample_records(lang)], add_special_tokens=False)["input_ids"]])
        expected = v["tokens_planned"] / doc_tokens.sum()  # copies per document (no rehydration: equal)
        frac = expected - np.floor(expected)
        sigma = np.sqrt((doc_tokens.astype(float) ** 2 * frac * (1 - frac)).sum())
        assert abs(v["tokens_drawn"] - v["tokens_planned"]) <= 4 * sigma + 1
        assert v["epochs"] == pytest.approx(v["tokens_drawn"] / v["tokens_available"])

    manifest = json.loads((tmp_path / "mix" / "manifest.json").read_text())
    assert sum(s["documents"] for s in manifest["shards"]) == len(records)
    assert [s["path"] for s in manifest["shards"]] == [f"mixture/mixture-{i:05d}.jsonl.gz" for i in range(3)]
    by_lang = {}
    for shard in manifest["shards"]:
        for lang, n in shard["documents_by_lang"].items():
            by_lang[lang] = by_lang.get(lang, 0) + n
    assert by_lang == {lang: sum(r["lang"] == lang for r in records) for lang in ("en", "ko")}
    assert manifest["tokens_drawn_by_lang"] == drawn
    markdown = (tmp_path / "mix" / "report.md").read_text()
    assert "| ko_sample | ko |" in markdown and "temperature sampling, alpha = 0.3" in markdown


def test_deterministic_with_seed_and_dry_run(tmp_path, en_tokenizer_dir):
    first = _config(en_tokenizer_dir, tmp_path / "a", _sources(), seed=3)
    run(first)
    run(_config(en_tokenizer_dir, tmp_path / "b", _sources(), seed=3))
    run(_config(en_tokenizer_dir, tmp_path / "c", _sources(), seed=4))
    a, b, c = (_read_mixture(tmp_path / d) for d in "abc")
    assert a == b and a != c
    shard_bytes = {d: (tmp_path / d / "mixture" / "mixture-00000.jsonl.gz").read_bytes() for d in "ab"}
    assert shard_bytes["a"] == shard_bytes["b"]  # byte-identical, gzip header included
    # A rerun reuses the cached token counts and replaces (not adds to) the shards.
    cache = sorted((tmp_path / "a" / "token_counts").glob("*.npz"))
    mtimes = [p.stat().st_mtime_ns for p in cache]
    run(first)
    assert [p.stat().st_mtime_ns for p in cache] == mtimes and _read_mixture(tmp_path / "a") == a
    run(_config(en_tokenizer_dir, tmp_path / "dry", _sources(), write_shards=False))
    assert (tmp_path / "dry" / "report.md").is_file() and not (tmp_path / "dry" / "mixture").exists()


def test_replay_share_and_unimax(tmp_path, en_tokenizer_dir):
    run(_config(en_tokenizer_dir, tmp_path / "mix", _sources(), method="unimax", max_epochs=2,
                total_tokens=30_000, **{"replay.lang": "en", "replay.share": 0.1}))
    report = json.loads((tmp_path / "mix" / "report.json").read_text())
    assert report["languages"]["en"]["tokens_planned"] == 3000
    assert report["languages"]["ko"]["tokens_planned"] == 27_000 or report["languages"]["ko"]["epochs"] <= 2.2
    assert report["languages"]["en"]["share"] == pytest.approx(0.1, abs=0.03)
    records = _read_mixture(tmp_path / "mix")
    assert {r["lang"] for r in records} == {"en", "ko"}


def test_upsampling_and_rehydration(tmp_path, en_tokenizer_dir, caplog):
    en = sample_records("en")
    half = len(en) // 2
    # Two English sources of similar size; "facts" upsampled 3×. Within "web", documents from duplicate
    # clusters of size 100 (rehydration weight 8) against unique ones (weight 1).
    facts = _write_jsonl(tmp_path / "facts.jsonl", en[:half])
    web = _write_jsonl(tmp_path / "web.jsonl", [
        {**r, "metadata": {"minhash_cluster_size": 100 if i % 2 else 1}} for i, r in enumerate(en[half:])
    ])
    sources = [{"name": "facts", "lang": "en", "paths": [facts], "upsample": 3},
               {"name": "web", "lang": "en", "paths": [web], "rehydrate": True}]
    run(_config(en_tokenizer_dir, tmp_path / "mix", sources, total_tokens=200_000))
    assert "language en is repeated" in caplog.text  # ~20 epochs of the English sample
    report = {s["name"]: s for s in json.loads((tmp_path / "mix" / "report.json").read_text())["sources"]}
    # web's effective size: unique tokens + 8 × cluster tokens; facts: 3 × its tokens.
    assert report["facts"]["tokens_effective"] == 3 * report["facts"]["tokens_available"]
    ratio = report["facts"]["tokens_planned"] / report["web"]["tokens_planned"]
    assert ratio == pytest.approx(report["facts"]["tokens_effective"] / report["web"]["tokens_effective"], rel=1e-3)
    copies = {}
    for r in _read_mixture(tmp_path / "mix"):
        copies[r["id"]] = copies.get(r["id"], 0) + 1
    big = [copies.get(r["id"], 0) for i, r in enumerate(en[half:]) if i % 2]
    unique = [copies.get(r["id"], 0) for i, r in enumerate(en[half:]) if not i % 2]
    assert np.mean(big) / max(np.mean(unique), 1e-9) == pytest.approx(8, rel=0.25)


def test_bad_input_errors(tmp_path, en_tokenizer_dir):
    empty = _write_jsonl(tmp_path / "empty.jsonl", [{"text": ""}, {"text": "   "}])
    with pytest.raises(UserError, match="language 'ko' has no data"):
        run(_config(en_tokenizer_dir, tmp_path / "m", [_sources()[0], {"lang": "ko", "paths": [empty]}]))
    broken = tmp_path / "broken.jsonl"
    broken.write_text(Path(SAMPLE_DIR / "ko.jsonl").read_text(encoding="utf-8") + '{"text": 5}\nnot json\n', encoding="utf-8")
    summary = run(_config(en_tokenizer_dir, tmp_path / "r", [_sources()[0], {"lang": "ko", "paths": [str(broken)]}]))
    rejected = [json.loads(line) for line in (tmp_path / "r" / "rejected.jsonl").read_text().splitlines()]
    assert summary["rejected"] == 2 and [r["line"] for r in rejected] == [len(sample_records("ko")) + 1, len(sample_records("ko")) + 2]
    with pytest.raises(UserError, match="sums to 0"):
        _config(en_tokenizer_dir, tmp_path / "m", _sources(), method="weights", weights={"ko": 0, "en": 0})
    with pytest.raises(UserError, match=r"replay\.share"):
        _config(en_tokenizer_dir, tmp_path / "m", _sources(), **{"replay.share": 1.0})
    with pytest.raises(UserError, match="used twice"):
        _config(en_tokenizer_dir, tmp_path / "m", [_sources()[0], _sources()[0]])


def test_cli_one_line_error_and_shipped_recipes_load(tmp_path, en_tokenizer_dir, capsys):
    recipe = tmp_path / "mix.yaml"
    recipe.write_text(f"tokenizer: {en_tokenizer_dir}\noutput: {tmp_path / 'out'}\nsources:\n"
                      f"  - {{lang: en, paths: ['{SAMPLE_DIR / 'en.jsonl'}']}}\n  - {{lang: ko, paths: ['{SAMPLE_DIR / 'ko.jsonl'}']}}\n"
                      "replay: {lang: en, share: 1.5}\n")
    assert main(["corpus", "mix", "--config", str(recipe)]) == 2
    err = capsys.readouterr().err.strip()
    assert "replay.share" in err and len(err.splitlines()) == 1
    assert main(["corpus", "mix", "--config", str(recipe), "--replay.share", "0.2", "--tokens-per-shard", "100000"]) == 0
    assert json.loads((tmp_path / "out" / "report.json").read_text())["languages"]["en"]["planned_share"] == pytest.approx(0.2)
    recipes = sorted((REPO / "data_recipes").glob("mix_*.yaml"))
    assert recipes, "data_recipes/mix_*.yaml should ship at least one mixture recipe"
    for path in recipes:
        cfg = load_config(MixConfig, path)
        assert cfg.sources and cfg.tokenizer


def test_parquet_source_from_corpus_build(tmp_path, en_tokenizer_dir):
    import pyarrow as pa
    import pyarrow.parquet as pq

    # `corpus build`'s Parquet layout: cluster size at the top level, metadata as a JSON string.
    ko = sample_records("ko")
    table = pa.Table.from_pylist([{"id": r["id"], "text": r["text"], "lang": "ko", "minhash_cluster_size": 5 if i < 10 else 1,
                                   "metadata": "{}"} for i, r in enumerate(ko)])
    pq.write_table(table, tmp_path / "ko.parquet")
    sources = [_sources()[0], {"name": "ko_kept", "lang": "ko", "paths": [str(tmp_path / "ko.parquet")], "rehydrate": True}]
    run(_config(en_tokenizer_dir, tmp_path / "mix", sources, total_tokens=60_000))
    report = {s["name"]: s for s in json.loads((tmp_path / "mix" / "report.json").read_text())["sources"]}
    tok = load_tokenizer(en_tokenizer_dir)
    lengths = [len(ids) for ids in tok([r["text"] for r in ko], add_special_tokens=False)["input_ids"]]
    assert report["ko_kept"]["tokens_available"] == sum(lengths)
    assert report["ko_kept"]["tokens_effective"] == 5 * sum(lengths[:10]) + sum(lengths[10:])


def test_validation_documents_are_held_out_of_the_draw(tmp_path, en_tokenizer_dir):
    summary = run(_config(en_tokenizer_dir, tmp_path / "mix", _sources(), validation_documents=8, total_tokens=60_000))
    report = json.loads((tmp_path / "mix" / "report.json").read_text())
    held = {}
    for lang in ("en", "ko"):
        with gzip.open(tmp_path / "mix" / "validation" / f"{lang}.jsonl.gz", "rt", encoding="utf-8") as f:
            held[lang] = [json.loads(line) for line in f]
        assert len(held[lang]) == 8 and {r["lang"] for r in held[lang]} == {lang}
        assert report["languages"][lang]["validation_documents"] == 8
    drawn_ids = {r["id"] for r in _read_mixture(tmp_path / "mix")}
    held_ids = {r["id"] for records in held.values() for r in records}
    assert not drawn_ids & held_ids  # the mixture never contains validation text
    assert len(drawn_ids) == 2 * 60 - 16  # every other document is drawn at ~3 epochs
    tok = load_tokenizer(en_tokenizer_dir)
    en_tokens = sum(len(ids) for ids in tok([r["text"] for r in sample_records("en")], add_special_tokens=False)["input_ids"])
    assert report["languages"]["en"]["tokens_available"] + report["languages"]["en"]["validation_tokens"] == en_tokens
    assert json.loads((tmp_path / "mix" / "manifest.json").read_text())["validation"] == {
        "en": "validation/en.jsonl.gz", "ko": "validation/ko.jsonl.gz"}
    assert summary["shards"] == 1
