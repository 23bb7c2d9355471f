"""`polyglot-llama model init`: a freshly initialised Llama model directory from a preset and a tokenizer."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..config import write_resolved_config
from ..errors import UserError
from .checkpoint import load_tokenizer, save_checkpoint
from .presets import PRESETS, preset_config


@dataclass
class ModelInitConfig:
    tokenizer: str = ""
    """Tokenizer directory; the model's vocabulary size and BOS/EOS ids come from it."""
    output: str = ""
    """Directory to write the model (config.json, model.safetensors and the tokenizer files)."""
    preset: str = "tiny"
    """Model shape: tiny, small, 1b, llama2-7b, llama2-13b, llama2-34b or llama2-70b."""
    overrides: dict = field(default_factory=dict)
    """LlamaConfig attributes to override, e.g. {max_position_embeddings: 2048, num_hidden_layers: 4}."""
    seed: int = 0
    """Seed of the weight initialisation."""

    def __post_init__(self):
        if not self.tokenizer:
            raise UserError("key 'tokenizer' is required: the tokenizer directory that fixes the vocabulary")
        if not self.output:
            raise UserError("key 'output' is required: where to write the model directory")
        if self.preset not in PRESETS:
            raise UserError(f"key 'preset' is {self.preset!r}; choose one of: {', '.join(PRESETS)}")


def run(cfg: ModelInitConfig) -> dict:
    from transformers import LlamaForCausalLM

    tokenizer = load_tokenizer(cfg.tokenizer)
    config = preset_config(
        cfg.preset,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **cfg.overrides,
    )
    torch.manual_seed(cfg.seed)
    model = LlamaForCausalLM(config)
    save_checkpoint(model, cfg.output, tokenizer_dir=cfg.tokenizer)
    write_resolved_config(cfg, cfg.output, "model init")
    n_params = sum(p.numel() for p in model.parameters())
    return {"output": str(Path(cfg.output)), "parameters": n_params, "vocab_size": config.vocab_size}
