"""Fertility metrics against hand-computed values on a tokenizer small enough to tokenise by hand."""

from __future__ import annotations

import json

import pytest

from polyglot_llama.errors import UserError
from polyglot_llama.tokenizer.fertility import FertilityConfig, partial_token_ids, count_words, format_table, measure, run
from polyglot_llama.tokenizer.train import BYTE_TOKENS, SPECIAL_TOKENS, build_llama_tokenizer, save_tokenizer_dir


@pytest.fixture
def tiny_dir(tmp_path):
    """Vocabulary: specials, 256 bytes, ▁ a b ▁a ▁ab; so "ab ab" is [▁ab, ▁ab] and 한 is three byte tokens."""
    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS + BYTE_TOKENS + ["▁", "a", "b", "▁a", "▁ab"])}
    save_tokenizer_dir(build_llama_tokenizer(vocab, [("▁", "a"), ("▁a", "b")]), tmp_path / "tiny")
    return tmp_path / "tiny"


def test_word_definitions():
    assert count_words("나는 학교에 간다.", "ko") == 3  # eojeol
    assert count_words("東京へ行く。", "ja") == 5  # letters, not the full stop
    assert count_words("北京 2024年。", "zh") == 7  # digits count as characters too
    assert count_words("Hello,  world\nagain", "en") == 3


def test_measure_matches_hand_counts(tiny_dir):
    by_lang = {"en": [{"text": "ab ab", "key": "1"}], "ko": [{"text": "한 ab", "key": "1"}, {"text": "ab", "key": "9"}]}
    stats = measure(str(tiny_dir), by_lang)
    en, ko = stats["en"], stats["ko"]
    assert (en["tokens"], en["tokens_per_word"], en["tokens_per_char"], en["bytes_per_token"]) == (2, 1.0, 0.4, 2.5)
    assert en["partial_char_share"] == 0.0 and en["en_ratio"] == 1.0
    # "한 ab" -> ▁ <0xED> <0x95> <0x9C> ▁ab (5 tokens, 3 of them bytes); "ab" -> ▁ab
    assert (ko["tokens"], ko["words"], ko["chars"], ko["bytes"]) == (6, 3, 6, 8)
    assert ko["partial_char_share"] == pytest.approx(0.5)
    assert ko["en_ratio"] == 2.5 and ko["parallel_records"] == 1  # only the record paired by id counts


def test_byte_level_partial_characters_count_as_byte_tokens(family_tokenizer_dirs):
    directory = family_tokenizer_dirs["gpt2"]
    vocab = json.loads((directory / "tokenizer.json").read_text())["model"]["vocab"]
    ids = partial_token_ids(str(directory))
    assert vocab["ì"] in ids and vocab["Ġ"] not in ids and vocab["a"] not in ids


def test_run_writes_table_json_and_chart(tiny_dir, tmp_path, capsys):
    data = tmp_path / "text.jsonl"
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"id": "en-1", "lang": "en", "text": "ab ab"}, {"id": "ko-1", "lang": "kor", "text": "한 ab"}, {"text": "ab"},
    ]) + "\n", encoding="utf-8")
    result = run(FertilityConfig(tokenizer=[str(tiny_dir), str(tiny_dir)], input=[str(data)], output=str(tmp_path / "out"),
                                 labels=["base", "again"]))
    report = json.loads((tmp_path / "out" / "fertility.json").read_text())
    assert result["languages"] == ["en", "ko", "und"]
    assert report["results"]["again"]["ko"]["en_ratio"] == 2.5 and report["results"]["again"]["ko"]["vs_first"] == 1.0
    assert (tmp_path / "out" / "fertility.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = capsys.readouterr().out
    assert "ko Korean" in table and "2.50" in table and "60.0%" in table
    assert format_table(report["results"], markdown=True).startswith("| lang | tokenizer |")


def test_bad_input_is_one_line(tiny_dir, tmp_path):
    with pytest.raises(UserError, match="labels"):
        FertilityConfig(tokenizer=[str(tiny_dir)], input=["x"], labels=["a", "b"])
    with pytest.raises(UserError, match="no tokenizer.json"):
        data = tmp_path / "t.jsonl"
        data.write_text('{"text": "ab", "lang": "en"}\n')
        run(FertilityConfig(tokenizer=[str(tmp_path)], input=[str(data)], output=str(tmp_path / "o")))


def test_malformed_and_empty_records_are_counted_and_kept(tiny_dir, tmp_path, capsys):
    data = tmp_path / "text.jsonl"
    data.write_bytes(b'{"lang": "en", "text": "ab"}\n{"lang": "en"\n{"lang": "en", "text": 3}\n\xff\xfe\n'
                     b'{"lang": "en", "text": "  "}\n[1]\n{"lang": "en", "text": "ab ab"}\n')
    result = run(FertilityConfig(tokenizer=[str(tiny_dir)], input=[str(data)], output=str(tmp_path / "out")))
    assert result["records_measured"] == 2
    assert sum(result["rejected_records"].values()) == 5
    rejected = [json.loads(line) for line in (tmp_path / "out" / "rejected.jsonl").read_text().splitlines()]
    assert [r["reason"] for r in rejected] == ["malformed JSON: Expecting ',' delimiter", "missing or non-string field 'text'",
                                               "invalid UTF-8", "empty text", "record is not a JSON object"]
    assert json.loads((tmp_path / "out" / "fertility.json").read_text())["rejected_records"]["empty text"] == 1
    assert "5 records rejected" in capsys.readouterr().out


def test_partial_characters_are_measured_for_a_byte_level_base_lacking_byte_characters(family_tokenizer_dirs, tmp_path):
    # A byte-level vocabulary that lacks some byte characters (as SmolLM2's does) is still measured as byte-level.
    data = json.loads((family_tokenizer_dirs["gpt2"] / "tokenizer.json").read_text())
    del data["model"]["vocab"]["Ā"]
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "tokenizer.json").write_text(json.dumps(data))
    ids = partial_token_ids(str(tmp_path / "t"))
    assert data["model"]["vocab"]["ì"] in ids and data["model"]["vocab"]["a"] not in ids
