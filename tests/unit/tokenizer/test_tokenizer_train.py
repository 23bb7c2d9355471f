"""`tokenizer train`: the Llama 2 layout and conventions, and AutoTokenizer parity."""

from __future__ import annotations

import json

import pytest
from tokenizers import Tokenizer
from transformers import AutoTokenizer

from polyglot_llama.errors import UserError
from polyglot_llama.tokenizer.train import TokenizerTrainConfig, run


def test_train_llama_layout_and_auto_tokenizer_parity(tmp_path, texts):
    data = tmp_path / "en.jsonl"
    data.write_text("\n".join(json.dumps({"text": t}) for t in texts["en"]) + "\n{broken\n", encoding="utf-8")
    result = run(TokenizerTrainConfig(input=[str(data)], output=str(tmp_path / "tok"), vocab_size=400))
    assert result["vocab_size"] == 400 and sum(result["rejected_records"].values()) == 1
    raw = Tokenizer.from_file(str(tmp_path / "tok" / "tokenizer.json"))
    vocab = raw.get_vocab()
    assert [vocab["<unk>"], vocab["<s>"], vocab["</s>"], vocab["<0x00>"], vocab["<0xFF>"]] == [0, 1, 2, 3, 258]
    assert not any(t.strip("▁").isdigit() and len(t.strip("▁")) > 1 for t in vocab)  # digits are split
    encoding = raw.encode("In 2024 the fog 한")
    assert encoding.ids[0] == 1 and encoding.ids[-3:] == [vocab["<0xED>"], vocab["<0x95>"], vocab["<0x9C>"]]
    auto = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    for text in [" leading space", "two  spaces\nand a newline", "In 2024 the fog 한국", ""]:
        assert auto(text)["input_ids"] == raw.encode(text).ids
        assert raw.decode(raw.encode(text, add_special_tokens=False).ids) == text


def test_train_rejects_bad_config():
    with pytest.raises(UserError, match="vocab_size"):
        TokenizerTrainConfig(input=["x"], output="y", vocab_size=100)
