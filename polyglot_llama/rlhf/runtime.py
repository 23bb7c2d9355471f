"""What the RLHF stages share around the models: policy loading and the hand-off to SFT (device, dtype and
ranks are `polyglot_llama.runtime`'s)."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from ..config import from_dict
from ..errors import UserError
from ..model.checkpoint import check_vocab_matches, load_causal_lm, load_tokenizer
from ..runtime import pick_device


def load_policy(model_path: str, tokenizer_path: str = "", device: torch.device | None = None,
                dtype: torch.dtype | None = None):
    """(causal LM on ``device``, tokenizer) with the vocabulary checked against the embeddings."""
    tokenizer_path = tokenizer_path or model_path
    tokenizer = load_tokenizer(tokenizer_path)
    model = load_causal_lm(model_path, dtype=dtype)
    check_vocab_matches(model, tokenizer, model_path, tokenizer_path)
    return model.to(device or pick_device()), tokenizer


def _merge(base: dict, overrides: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def sft_config(model: str, tokenizer: str, train_file: str | Path, output: str | Path, overrides: dict,
               where: str = "sft"):
    """An `SFTConfig` that fine-tunes ``model`` on ``train_file`` into ``output``; ``overrides`` (the stage's
    ``sft:`` section, e.g. {optim: {lr: 1e-5}, loop: {epochs: 1}}) are checked by SFT's own validation."""
    from ..train.sft import SFTConfig

    for key in ("model", "output", "tokenizer"):
        if key in overrides:
            raise UserError(f"key '{where}.{key}' is set by the RLHF stage itself; remove it")
    data = {"model": model, "tokenizer": tokenizer, "output": str(output),
            "data": {"train": [str(train_file)], "validation_fraction": 0.0}}
    return from_dict(SFTConfig, _merge(data, overrides), where=f"key '{where}'")


def finetune(cfg_sft) -> dict:
    from ..train.sft import run

    return run(cfg_sft)
