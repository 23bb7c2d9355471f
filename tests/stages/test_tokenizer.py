"""End to end through the CLI: `tokenizer train` -> `tokenizer extend` -> `tokenizer fertility`, bad input."""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers

from polyglot_llama.cli import main

SAMPLE = Path(__file__).resolve().parents[2] / "polyglot_llama" / "resources" / "sample_text"


def test_train_extend_fertility(tmp_path, capsys):
    assert main(["tokenizer", "train", "--input", str(SAMPLE / "en.jsonl"), "--vocab-size", "512",
                 "--output", str(tmp_path / "base")]) == 0
    capsys.readouterr()
    # The trained tokenizer carries the Llama 2 chat format as its chat template (and extension keeps it).
    assert "[INST]" in json.loads((tmp_path / "base" / "tokenizer_config.json").read_text())["chat_template"]
    assert main(["tokenizer", "extend", "--base", str(tmp_path / "base"), "--input", str(SAMPLE / "*.jsonl"),
                 "--lang", "ko", "--new-tokens", "400", "--output", str(tmp_path / "ko")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["new_vocab_size"] == 912 and summary["other_language_records"]["en"] == 60
    assert summary["token_ratio"] < 0.5  # Korean sample: less than half the tokens
    assert (tmp_path / "ko" / "tokenizer_extend.config.yaml").is_file()

    assert main(["tokenizer", "fertility", "--tokenizer", str(tmp_path / "base"), "--tokenizer", str(tmp_path / "ko"),
                 "--input", str(SAMPLE / "en.jsonl"), str(SAMPLE / "ko.jsonl"), str(SAMPLE / "ja.jsonl"),
                 "--output", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert "ko Korean" in out and "vs en" in out
    results = json.loads((tmp_path / "report" / "fertility.json").read_text())["results"]
    base, ko = results["base"], results["ko"]
    assert ko["en"]["tokens"] == base["en"]["tokens"]  # English untouched
    assert ko["ja"]["tokens"] == base["ja"]["tokens"]  # Korean pieces do not touch Japanese either
    assert ko["ko"]["vs_first"] < 0.5 and ko["ko"]["en_ratio"] < base["ko"]["en_ratio"] / 2
    assert base["ko"]["partial_char_share"] > 0.8 > 0.5 > ko["ko"]["partial_char_share"]
    assert (tmp_path / "report" / "fertility.png").stat().st_size > 10_000


def test_unsupported_base_is_a_one_line_error(tmp_path, capsys):
    wordpiece = Tokenizer(models.WordPiece({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    wordpiece.pre_tokenizer = pre_tokenizers.Whitespace()
    (tmp_path / "wp").mkdir()
    wordpiece.save(str(tmp_path / "wp" / "tokenizer.json"))
    code = main(["tokenizer", "extend", "--base", str(tmp_path / "wp"), "--input", str(SAMPLE / "ko.jsonl"),
                 "--new-tokens", "10", "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "model type is 'WordPiece', not BPE; supported base tokenizers: Llama-2-style" in err[0]
    assert not (tmp_path / "out").exists()
