"""Checks on model and tokenizer directories before they are loaded: one line naming the file and the fault.

transformers reports a truncated ``model.safetensors``, a ``config.json`` that is not JSON, weights of another
shape or a garbage ``tokenizer.json`` with a deep traceback (or, for some shapes, not at all). These checks
read only headers (the safetensors header is a length-prefixed JSON block at the start of the file), so they
cost milliseconds even for a 70B checkpoint, and each fault becomes a `UserError` that says what to do.
"""

from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path
from typing import Any

from .errors import UserError

# LlamaConfig attributes a user may set with `model init --overrides` (anything else is a typo or, like
# `auto_map`, would make the written config.json ask for remote code).
LLAMA_CONFIG_KEYS = frozenset({
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "hidden_act", "max_position_embeddings", "initializer_range",
    "rms_norm_eps", "use_cache", "pad_token_id", "bos_token_id", "eos_token_id", "pretraining_tp",
    "tie_word_embeddings", "rope_theta", "rope_scaling", "rope_parameters", "attention_bias",
    "attention_dropout", "mlp_bias",
})
_POSITIVE_SHAPE_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                        "num_attention_heads", "num_key_value_heads", "max_position_embeddings")
_LAYER = re.compile(r"layers\.(\d+)\.")


def check_llama_shape(shape: dict[str, Any], where: str) -> None:
    """Positive sizes; heads divide the hidden size; KV heads divide the heads (grouped-query attention)."""
    for key in _POSITIVE_SHAPE_KEYS:
        value = shape.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise UserError(f"{where}: '{key}' is {value!r}; it must be a positive integer")
    hidden, heads = shape.get("hidden_size"), shape.get("num_attention_heads")
    kv_heads = shape.get("num_key_value_heads") or heads
    if hidden and heads and not shape.get("head_dim") and hidden % heads:
        raise UserError(f"{where}: hidden_size {hidden} is not divisible by num_attention_heads {heads}; "
                        f"choose heads that divide it (e.g. {_divisor_near(hidden, heads)})")
    if heads and kv_heads and heads % kv_heads:
        raise UserError(f"{where}: num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads} "
                        "(grouped-query attention shares each KV head among equal groups); "
                        f"use num_key_value_heads {_divisor_near(heads, kv_heads)}")


def _divisor_near(n: int, k: int) -> int:
    return min((d for d in range(1, n + 1) if n % d == 0), key=lambda d: (abs(d - k), d))


def check_model_overrides(preset: str, overrides: dict[str, Any]) -> None:
    """`model init`: override keys are LlamaConfig attributes and the resulting shape is valid."""
    from .model.presets import PRESETS  # imports transformers: only for configs that name a preset

    unknown = sorted(set(overrides) - LLAMA_CONFIG_KEYS)
    if unknown:
        raise UserError(f"key 'overrides.{unknown[0]}' is not a LlamaConfig attribute; "
                        f"allowed: {', '.join(sorted(LLAMA_CONFIG_KEYS))}")
    if preset not in PRESETS:
        return  # the config's own check names the preset
    layers, hidden, heads, kv_heads, ffn, context = PRESETS[preset]
    shape = dict(num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=heads,
                 num_key_value_heads=kv_heads, intermediate_size=ffn, max_position_embeddings=context)
    check_llama_shape({**shape, **overrides}, f"overrides of preset {preset!r}")


def drop_remote_code_keys(config) -> None:
    """Remove ``auto_map`` from a loaded model's config before it is saved: we load with
    trust_remote_code=False, so the map was never used, and copying it would make every output checkpoint
    ask its users to run someone's remote code."""
    vars(config).pop("auto_map", None)


def _read_json(path: Path, what: str) -> Any:
    try:
        text = path.read_bytes().decode("utf-8")
    except PermissionError:
        raise UserError(f"{path}: cannot read {what} (permission denied); fix its permissions") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, expected the {what} file") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: {what} is not UTF-8 text (byte {e.start}); the file is damaged, re-create or re-download it") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read {what} ({e.strerror or e})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: {what} is not valid JSON ({e.msg} at line {e.lineno}); "
                        "the file is damaged, re-create or re-download it") from None


def safetensors_header(path: Path) -> dict[str, Any]:
    """The tensor table of a safetensors file, after checking it is complete (not truncated)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                raise UserError(f"{path}: {size} bytes, too short to be a safetensors file; the file is truncated or empty")
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len > min(size - 8, 100 << 20):
                raise UserError(f"{path}: not a safetensors file (its header length {header_len} does not fit "
                                f"in {size} bytes); the file is damaged or in another format")
            raw = f.read(header_len)
    except PermissionError:
        raise UserError(f"{path}: cannot read the weights (permission denied); fix its permissions") from None
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UserError(f"{path}: the safetensors header is not valid JSON; the file is damaged, re-create it") from None
    if not isinstance(header, dict):
        raise UserError(f"{path}: the safetensors header is not a table of tensors; the file is damaged")
    header.pop("__metadata__", None)
    data_bytes = size - 8 - header_len
    end = max((t.get("data_offsets", [0, 0])[1] for t in header.values() if isinstance(t, dict)), default=0)
    if end > data_bytes:
        raise UserError(f"{path}: truncated: its header describes {end:,} bytes of tensors but the file holds "
                        f"{data_bytes:,}; re-copy or re-save the checkpoint")
    return header


def check_model_dir(path: str | os.PathLike) -> None:
    """A readable, valid ``config.json`` and complete safetensors whose shapes match it.

    Missing directories and files are left to the loader's own messages; this names damaged ones.
    """
    path = Path(path)
    config_file = path / "config.json"
    if not path.is_dir() or not config_file.exists():
        return
    config = _read_json(config_file, "config.json")
    if not isinstance(config, dict):
        raise UserError(f"{config_file}: config.json must be a JSON object of model settings")
    check_llama_shape(config, str(config_file))
    tensors: dict[str, dict] = {}
    for weights in sorted(path.glob("*.safetensors")):
        tensors.update(safetensors_header(weights))
    if tensors:
        _check_weights_match_config(tensors, config, path)


def _check_weights_match_config(tensors: dict[str, dict], config: dict, path: Path) -> None:
    hidden, vocab, ffn = config.get("hidden_size"), config.get("vocab_size"), config.get("intermediate_size")
    heads = config.get("num_attention_heads")
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or (hidden // heads if hidden and heads else None)
    kv_width = kv_heads * head_dim if kv_heads and head_dim else None
    # tensor name suffix -> (expected shape, the config keys that give it)
    expected = {
        "embed_tokens.weight": ([vocab, hidden], "vocab_size and hidden_size"),
        "lm_head.weight": ([vocab, hidden], "vocab_size and hidden_size"),
        "self_attn.k_proj.weight": ([kv_width, hidden], "num_key_value_heads, head_dim and hidden_size"),
        "mlp.gate_proj.weight": ([ffn, hidden], "intermediate_size and hidden_size"),
    }
    for name, info in tensors.items():
        for suffix, (shape, keys) in expected.items():
            if name.endswith(suffix) and None not in shape and list(info.get("shape", [])) != shape:
                raise UserError(f"{path}: weights do not match config.json: {name} has shape {info.get('shape')} "
                                f"but {keys} give {shape}; the weights belong to another model, or config.json was edited")
    layers = {int(m.group(1)) for name in tensors if (m := _LAYER.search(name))}
    n_layers = config.get("num_hidden_layers")
    if layers and n_layers and len(layers) != n_layers:
        raise UserError(f"{path}: weights do not match config.json: the weights hold {len(layers)} layers but "
                        f"num_hidden_layers is {n_layers}; the weights belong to another model, or config.json was edited")


def check_tokenizer_dir(path: str | os.PathLike) -> None:
    """``tokenizer.json`` (and ``tokenizer_config.json`` if present) readable, valid JSON of the right shape."""
    path = Path(path)
    tokenizer_file = path / "tokenizer.json"
    if not tokenizer_file.exists():
        return
    data = _read_json(tokenizer_file, "tokenizer.json")
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict) or "vocab" not in data["model"]:
        raise UserError(f"{tokenizer_file}: not a Hugging Face tokenizer (no model.vocab); "
                        "give the directory written by `polyglot-llama tokenizer train` or `tokenizer.save_pretrained`")
    config_file = path / "tokenizer_config.json"
    if config_file.exists() and not isinstance(_read_json(config_file, "tokenizer_config.json"), dict):
        raise UserError(f"{config_file}: tokenizer_config.json must be a JSON object")
