"""`sft` on a model whose tokenizer carries a ChatML template: conversations are rendered in it (not Llama 2's),
the answers and their <|im_end|> are the learned tokens, and the output tokenizer keeps the template."""

from __future__ import annotations

import json

import pytest
from chat_families import build_tokenizer, template
from polyglot_test_utils import make_tiny_model

ANSWERS = ["Paris.", "The first document.", "A second one.", "It is."]


def test_sft_renders_with_the_tokenizers_chatml_template(tmp_path, one_thread):
    from polyglot_llama.config import from_dict
    from polyglot_llama.errors import UserError
    from polyglot_llama.model.checkpoint import load_tokenizer
    from polyglot_llama.train.sft import SFTConfig, run

    tokenizer = build_tokenizer("chatml", tmp_path / "tok")
    model = make_tiny_model(tmp_path / "tok", tmp_path / "model")
    records = [{"messages": [{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": a}]}
               for i, a in enumerate(ANSWERS)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    config = {"model": str(model), "output": str(tmp_path / "out"), "batch_size": 2,
              "data": {"train": [str(tmp_path / "train.jsonl")], "validation_fraction": 0, "seq_len": 128},
              "loop": {"max_steps": 1, "micro_batch_size": 2}}
    summary = run(from_dict(SFTConfig, config))
    # Learned: each answer's own tokens and its <|im_end|>; the Llama 2 format would learn " answer </s>".
    expected = sum(len(tokenizer(a, add_special_tokens=False)["input_ids"]) + 1 for a in ANSWERS)
    assert summary["answer_tokens"] == expected
    assert load_tokenizer(tmp_path / "out").chat_template == template("chatml", marked=False)
    with pytest.raises(UserError, match="key 'chat_template'"):
        from_dict(SFTConfig, {**config, "chat_template": str(tmp_path / "missing.jinja")})
