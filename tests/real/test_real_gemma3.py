"""Gemma 3 270M (gemma3_text, tied, SentencePiece family): model extend keeps the architecture and the head tied."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from polyglot_llama.model.checkpoint import load_causal_lm
from polyglot_llama.model.extend import ModelExtendConfig, run as extend_model
from polyglot_llama.tokenizer.extend import TokenizerExtendConfig, run as extend_tokenizer

KO = Path(__file__).resolve().parents[2] / "polyglot_llama" / "resources" / "sample_text" / "ko.jsonl"


def test_gemma3_model_extend(gemma3_dir, tmp_path):
    extend_tokenizer(TokenizerExtendConfig(base=str(gemma3_dir), input=[str(KO)], new_tokens=50, output=str(tmp_path / "tok"), lang="ko"))
    # The default distill init, kept short (2 steps over 400 tokens): its 262k-row head makes every step costly.
    result = extend_model(ModelExtendConfig(model=str(gemma3_dir), tokenizer=str(tmp_path / "tok"), output=str(tmp_path / "ext"),
                                            init_steps=2, init_max_tokens=400))
    assert result["model_type"] == "gemma3_text" and result["tied_embeddings"] is True and result["init"] == "distill"
    config = json.loads((tmp_path / "ext" / "config.json").read_text())
    assert config["model_type"] == "gemma3_text" and config["vocab_size"] == 262144 + 50
    with safe_open(tmp_path / "ext" / "model.safetensors", "pt") as f:
        assert "lm_head.weight" not in f.keys()
        new_rows = f.get_slice("model.embed_tokens.weight")[262144:]
    with safe_open(gemma3_dir / "model.safetensors", "pt") as f:
        old = f.get_tensor("model.embed_tokens.weight")
    assert torch.isfinite(new_rows).all() and not torch.equal(new_rows, torch.zeros_like(new_rows))
    model = load_causal_lm(tmp_path / "ext")
    assert torch.equal(model.get_input_embeddings().weight[:262144], old)
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
