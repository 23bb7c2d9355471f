"""Every common decoder-only architecture loads, extends and keeps its model_type; remote code stays refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from polyglot_llama.errors import UserError
from polyglot_llama.model.checkpoint import load_causal_lm, read_model_config, save_checkpoint
from polyglot_llama.model.extend import ModelExtendConfig, run
from polyglot_llama.tokenizer.extend import TokenizerExtendConfig, run as extend_tokenizer

KO = Path(__file__).resolve().parents[3] / "polyglot_llama" / "resources" / "sample_text" / "ko.jsonl"
SHAPE = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             head_dim=8, max_position_embeddings=64)
TYPES = ["llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3_text"]


@pytest.fixture(scope="module")
def ko_tokenizer_dir(en_tokenizer_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ko_tok") / "tok"
    extend_tokenizer(TokenizerExtendConfig(base=str(en_tokenizer_dir), input=[str(KO)], new_tokens=100, output=str(out)))
    return out


def tiny(model_type: str, tied: bool, tokenizer_dir: Path, out: Path) -> Path:
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(model_type, vocab_size=512, tie_word_embeddings=tied, **SHAPE)
    torch.manual_seed(0)
    save_checkpoint(AutoModelForCausalLM.from_config(config), out, tokenizer_dir=tokenizer_dir)
    return out


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("model_type", TYPES)
def test_extend_any_decoder_architecture(model_type, tied, en_tokenizer_dir, ko_tokenizer_dir, tmp_path):
    base = tiny(model_type, tied, en_tokenizer_dir, tmp_path / "base")
    # the default init (distill) runs on every architecture; 8 fit steps, not 240: the init's quality is not tested here
    result = run(ModelExtendConfig(model=str(base), tokenizer=str(ko_tokenizer_dir), output=str(tmp_path / "ext"),
                                   init_steps=8))
    config = json.loads((tmp_path / "ext" / "config.json").read_text())
    assert config["model_type"] == model_type and config["vocab_size"] == 612 and result["tied_embeddings"] is tied
    before, after = load_causal_lm(base), load_causal_lm(tmp_path / "ext")
    assert type(after) is type(before)
    assert torch.equal(after.get_input_embeddings().weight[:512], before.get_input_embeddings().weight)
    assert torch.equal(after.get_output_embeddings().weight[:512], before.get_output_embeddings().weight)
    assert (after.get_output_embeddings().weight.data_ptr() == after.get_input_embeddings().weight.data_ptr()) is tied
    with safe_open(tmp_path / "ext" / "model.safetensors", "pt") as f:
        assert ("lm_head.weight" in f.keys()) is not tied
    ids = torch.tensor([[1, 600, 520, 5]])
    assert torch.isfinite(after(ids).logits).all()


def test_stage_save_of_a_gathered_state_keeps_tied_weights_single(en_tokenizer_dir, tmp_path):
    model = load_causal_lm(tiny("qwen3", True, en_tokenizer_dir, tmp_path / "base"))
    gathered = {k: v.clone() for k, v in model.state_dict().items()}  # as FSDP's full_state_dict gives it: copies
    save_checkpoint(model, tmp_path / "out", state_dict=gathered)
    with safe_open(tmp_path / "out" / "model.safetensors", "pt") as f:
        assert "lm_head.weight" not in f.keys() and "model.embed_tokens.weight" in f.keys()
    again = load_causal_lm(tmp_path / "out")
    assert torch.equal(again.lm_head.weight, model.lm_head.weight)


def test_remote_code_is_refused_unless_asked(en_tokenizer_dir, tmp_path):
    base = tiny("llama", True, en_tokenizer_dir, tmp_path / "base")
    config = json.loads((base / "config.json").read_text())
    (base / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoModelForCausalLM": "modeling_x.XForCausalLM"}}))
    with pytest.raises(UserError, match="auto_map.*trust_remote_code"):
        read_model_config(base)
    assert read_model_config(base, trust_remote_code=True)["model_type"] == "llama"


def test_non_causal_model_type_is_one_clear_error(en_tokenizer_dir, tmp_path):
    base = tiny("llama", True, en_tokenizer_dir, tmp_path / "base")
    config = json.loads((base / "config.json").read_text())
    (base / "config.json").write_text(json.dumps({**config, "model_type": "t5"}))
    with pytest.raises(UserError, match="'t5' is not a decoder-only causal LM"):
        read_model_config(base)


def test_training_checkpoint_of_a_tied_model_stores_the_head_once(en_tokenizer_dir, tmp_path):
    from accelerate import Accelerator

    from polyglot_llama.train import checkpointing

    model = load_causal_lm(tiny("llama", True, en_tokenizer_dir, tmp_path / "base"))
    optimizer = torch.optim.AdamW(model.parameters())
    path = checkpointing.save(tmp_path / "run", 1, model, optimizer, [], Accelerator(cpu=True), keep=1)
    with safe_open(path / "model.safetensors", "pt") as f:
        assert "lm_head.weight" not in f.keys() and "model.embed_tokens.weight" in f.keys()
    fresh = load_causal_lm(tmp_path / "base")
    with torch.no_grad():
        fresh.model.embed_tokens.weight.zero_()
    checkpointing.load(path, fresh, torch.optim.AdamW(fresh.parameters()))
    assert torch.equal(fresh.lm_head.weight, model.lm_head.weight)
