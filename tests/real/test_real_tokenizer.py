"""`tokenizer extend` and `tokenizer fertility` on the real tokenizers (issue 13 points 1 and 6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer
from transformers import AutoTokenizer

from polyglot_llama.tokenizer.extend import TokenizerExtendConfig, run
from polyglot_test_utils import sample_texts

KO = Path(__file__).resolve().parents[2] / "polyglot_llama" / "resources" / "sample_text" / "ko.jsonl"
# Every character class the checks below must keep: control characters whose byte-level stand-ins SmolLM2
# lacks (0x04, 0x13, 0x1d), 4-byte characters in the plane whose lead byte 0xF1 it lacks, emoji, CJK, Hangul.
TRICKY = ["a\x04b\x13c\x1d", "\U00040000 \U0007ffff", "emoji 🙂👍🏽", "日本語のテキスト。", "한국어  문장입니다.\n다음 줄",
          " leading", "tab\tnew\nline", "ÿ Ġ Ċ stand-ins"]


@pytest.fixture(scope="module")
def smollm2_ko(smollm2_dir, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("tok") / "smollm2-ko"
    result = run(TokenizerExtendConfig(base=str(smollm2_dir), input=[str(KO)], new_tokens=300, output=str(out), lang="ko"))
    return out, result


def test_byte_level_base_with_missing_byte_characters_is_extended(smollm2_ko):
    out, result = smollm2_ko
    # SmolLM2 lacks 21 byte characters: the 8 that valid UTF-8 can hold are appended first, the 13 it never holds left out.
    assert result["byte_chars_added"] == ["0x04", "0x06", "0x13", "0x14", "0x16", "0x1d", "0xf1", "0xf2"]
    assert result["byte_chars_left_out"] == ["0xc0", "0xc1"] + [f"0x{b:02x}" for b in range(0xF5, 0x100)]
    assert result["old_vocab_size"] == 49152 and result["new_vocab_size"] == 49152 + 8 + 300
    vocab = Tokenizer.from_file(str(out / "tokenizer.json")).get_vocab()
    assert [vocab["Ą"], vocab["Ć"]] == [49152, 49153]  # the stand-ins of 0x04 and 0x06


def test_real_guarantees_old_ids_english_round_trip_and_auto_tokenizer(smollm2_dir, smollm2_ko):
    out, _ = smollm2_ko
    base, ext = Tokenizer.from_file(str(smollm2_dir / "tokenizer.json")), Tokenizer.from_file(str(out / "tokenizer.json"))
    old, new = base.get_vocab(with_added_tokens=True), ext.get_vocab(with_added_tokens=True)
    assert all(new[t] == i for t, i in old.items())
    for text in sample_texts("en"):
        assert ext.encode(text).ids == base.encode(text).ids
    for text in TRICKY + sample_texts("ko") + sample_texts("ja"):
        assert ext.decode(ext.encode(text).ids) == text, text
    assert base.decode(base.encode(TRICKY[0]).ids) == "abc"  # the base drops the control characters
    ko = sample_texts("ko")
    assert sum(len(ext.encode(t).ids) for t in ko) < 0.6 * sum(len(base.encode(t).ids) for t in ko)
    auto = AutoTokenizer.from_pretrained(out)
    for text in TRICKY + ko[:10]:
        assert auto(text)["input_ids"] == ext.encode(text).ids
        assert auto.decode(auto(text)["input_ids"]) == text
    assert auto.chat_template == AutoTokenizer.from_pretrained(smollm2_dir).chat_template
    assert json.loads((out / "tokenizer_config.json").read_text())["eos_token"] == "<|im_end|>"


def test_fertility_counts_partial_character_tokens_of_byte_level(smollm2_dir, smollm2_ko, tmp_path):
    from polyglot_llama.tokenizer.fertility import FertilityConfig, run as fertility

    out, _ = smollm2_ko
    data = tmp_path / "text.jsonl"
    data.write_text(KO.read_text(encoding="utf-8") + '{"id": "ko-x", "lang": "ko", "text": ""}\nnot json\n', encoding="utf-8")
    result = fertility(FertilityConfig(tokenizer=[str(smollm2_dir), str(out)], input=[str(data)], output=str(tmp_path / "f"),
                                       labels=["base", "ext"]))
    report = json.loads((tmp_path / "f" / "fertility.json").read_text())["results"]
    # Most Hangul syllables are split 2 + 1 bytes by SmolLM2: 96.8 % of its Korean tokens are partial characters.
    assert report["base"]["ko"]["partial_char_share"] == pytest.approx(0.968, abs=0.002)
    assert report["ext"]["ko"]["partial_char_share"] < 0.6
    assert result["records_measured"] == 60
    assert result["rejected_records"] == {"empty text": 1, "malformed JSON: Expecting value": 1}


def test_scoring_context_is_the_end_of_text_token_when_no_bos_is_added(smollm2_dir, gemma3_dir):
    from polyglot_llama.model.bits_per_byte import context_token

    # SmolLM2 adds no BOS (its bos_token is the chat-turn marker <|im_start|>): documents follow <|endoftext|>.
    assert context_token(Tokenizer.from_file(str(smollm2_dir / "tokenizer.json"))) == 0
    gemma = Tokenizer.from_file(str(gemma3_dir / "tokenizer.json"))
    assert context_token(gemma) == gemma.token_to_id("<bos>") == 2  # Gemma adds <bos> itself


def test_gemma3_sentencepiece_family_is_extended_with_its_guarantees(gemma3_dir, tmp_path):
    out = tmp_path / "gemma3-ko"
    result = run(TokenizerExtendConfig(base=str(gemma3_dir), input=[str(KO)], new_tokens=100, output=str(out), lang="ko"))
    assert result["family"] == "sentencepiece" and "byte_chars_added" not in result
    assert (result["old_vocab_size"], result["new_vocab_size"]) == (262144, 262244)
    base, ext = Tokenizer.from_file(str(gemma3_dir / "tokenizer.json")), Tokenizer.from_file(str(out / "tokenizer.json"))
    for text in sample_texts("en")[:20]:
        assert ext.encode(text).ids == base.encode(text).ids
    ko = sample_texts("ko")
    for text in TRICKY + ko:
        assert ext.decode(ext.encode(text).ids, skip_special_tokens=True) == text, text
    assert sum(len(ext.encode(t).ids) for t in ko) < sum(len(base.encode(t).ids) for t in ko)
    auto = AutoTokenizer.from_pretrained(out)
    for text in TRICKY[:4] + ko[:3]:
        assert auto(text)["input_ids"] == ext.encode(text).ids
