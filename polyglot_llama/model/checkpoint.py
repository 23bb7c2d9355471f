"""Load and save Hugging Face decoder-only checkpoint directories (``config.json`` + safetensors + tokenizer).

Any architecture that transformers maps to ``AutoModelForCausalLM`` loads (Llama 2/3, Mistral, Qwen 2/3,
Gemma 2/3 text, ...); its ``model_type`` is kept in every directory a stage writes. Code shipped with the
checkpoint (``auto_map``) runs only when the caller passes ``trust_remote_code=True``.

A model directory written by any stage is self-contained: weights, config and the tokenizer files, so the
next stage (or `AutoModelForCausalLM.from_pretrained`) needs only the path. Saves are written to a temporary
sibling directory first and each finished file is renamed into place, so a killed save never leaves a
half-written file.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from ..checks import check_model_dir, check_tokenizer_dir, drop_remote_code_keys
from ..errors import UserError

# Tested end to end (tests/unit/model, tests/real); any other decoder-only type transformers knows loads too.
TESTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3_text")


def causal_lm_types() -> set[str]:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)


def read_model_config(path: str | os.PathLike, trust_remote_code: bool = False) -> dict:
    """Read and check ``config.json`` of a decoder-only checkpoint directory."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: model directory not found; give a Hugging Face model directory (config.json + *.safetensors)")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise UserError(f"{path}: no config.json; this is not a Hugging Face model directory")
    check_model_dir(path)  # damaged config.json or safetensors, weights of another shape: one line naming the file
    config = json.loads(config_file.read_text())
    model_type = config.get("model_type")
    if config.get("auto_map") and not trust_remote_code:
        raise UserError(f"{config_file}: the checkpoint ships its own model code (auto_map); it is not run unless you "
                        "ask for it with trust_remote_code: true")
    if model_type not in causal_lm_types() and not (trust_remote_code and config.get("auto_map")):
        raise UserError(f"{config_file}: model_type {model_type!r} is not a decoder-only causal LM that transformers knows; "
                        f"give a causal LM checkpoint (tested: {', '.join(TESTED_MODEL_TYPES)})")
    if not any(path.glob("*.safetensors")):
        raise UserError(f"{path}: no *.safetensors weights; convert the checkpoint to safetensors (pickled .bin files are not loaded)")
    return config


def load_causal_lm(path: str | os.PathLike, dtype: torch.dtype | None = None, trust_remote_code: bool = False, **kwargs):
    """An `AutoModelForCausalLM` from a local directory, safetensors only, remote code only when asked for."""
    from transformers import AutoModelForCausalLM

    config = read_model_config(path, trust_remote_code)
    model, info = AutoModelForCausalLM.from_pretrained(
        str(path), dtype=dtype or torch.float32, use_safetensors=True, trust_remote_code=trust_remote_code,
        output_loading_info=True, **kwargs
    )
    # transformers initialises missing weights at random and drops unexpected ones with only a log line: a
    # config.json of another architecture would train a random model. (Old Llama exports carry rotary buffers.)
    missing = sorted(info.get("missing_keys") or [])
    unexpected = sorted(k for k in info.get("unexpected_keys") or [] if not k.endswith("rotary_emb.inv_freq"))
    if missing or unexpected:
        raise UserError(f"{path}: the weights do not fit config.json (model_type {config.get('model_type')!r}): "
                        f"{len(missing)} missing (e.g. {', '.join(missing[:2]) or '-'}), {len(unexpected)} unexpected "
                        f"(e.g. {', '.join(unexpected[:2]) or '-'}); is config.json from another model?")
    return model


def tied_duplicate_keys(model) -> list[str]:
    """State-dict keys that alias an earlier parameter (a tied LM head: ``lm_head.weight``), to save once."""
    seen, duplicates = set(), []
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in seen:
            duplicates.append(name)
        seen.add(id(param))
    return duplicates


def load_tokenizer(path: str | os.PathLike):
    """A fast tokenizer from a local directory (``tokenizer.json``); clear error when it is missing."""
    from transformers import AutoTokenizer

    path = Path(path)
    if not (path / "tokenizer.json").is_file():
        raise UserError(f"{path}: no tokenizer.json; give a Hugging Face tokenizer directory (e.g. from `polyglot-llama tokenizer train`)")
    check_tokenizer_dir(path)
    return AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)


def check_vocab_matches(model, tokenizer, model_path: str | os.PathLike, tokenizer_path: str | os.PathLike) -> None:
    """The model must have an embedding row for every token id the tokenizer can produce."""
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        raise UserError(
            f"{model_path}: the model has {rows} embedding rows but the tokenizer {tokenizer_path} has {len(tokenizer)} tokens; "
            "run `polyglot-llama model extend` to resize the model to this tokenizer"
        )


def copy_tokenizer_files(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
        if (Path(src) / name).is_file():
            shutil.copy2(Path(src) / name, Path(dst) / name)


def save_checkpoint(model, output: str | os.PathLike, tokenizer=None, tokenizer_dir: str | os.PathLike | None = None,
                    extra_files: dict[str, str] | None = None, state_dict: dict | None = None) -> Path:
    """Atomically write ``model`` (safetensors), its tokenizer and extra text files to ``output``.

    ``state_dict`` replaces the model's own (a full state gathered from sharded FSDP ranks). Its tensors
    are copies, so transformers cannot see which are tied: tied duplicates are dropped here, so a tied
    model's head is never written twice (loading re-ties it).
    """
    if state_dict is not None:
        duplicates = set(tied_duplicate_keys(model))
        state_dict = {k: v for k, v in state_dict.items() if k not in duplicates}
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}."))
    try:
        drop_remote_code_keys(model.config)  # no auto_map (remote code) copied into outputs
        model.save_pretrained(tmp, safe_serialization=True, state_dict=state_dict)
        if tokenizer_dir is not None:
            copy_tokenizer_files(tokenizer_dir, tmp)
        elif tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
        output.mkdir(exist_ok=True)
        # Move file by file: the directory may also hold a run's checkpoints, logs and reports.
        for stale in output.glob("model*.safetensors*"):
            stale.unlink()
        for item in tmp.iterdir():
            os.replace(item, output / item.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return output
