"""Reward models: a Llama checkpoint whose LM head is replaced by a scalar head (Llama 2 §3.2.2).

An RM directory is a plain Hugging Face ``LlamaForSequenceClassification`` (``num_labels=1``) directory with
its tokenizer files, so ``AutoModelForSequenceClassification.from_pretrained(path)`` loads it, plus
``reward_config.json`` ({"kind": "helpfulness" | "safety", ...}) written by `polyglot-llama reward`.

The score of a sequence is the head's output at its last non-pad token. We locate that token from the
attention mask, never from ``config.pad_token_id``: Llama 2 has no pad token, and the usual stand-ins
(pad = eos or unk) make "the rightmost token that is not pad" wrong for any sequence ending in ``</s>``.
Position ids are derived from the mask as well, so left-padded, right-padded and unpadded rows score
the same.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Sequence

import torch

from ..errors import UserError
from ..runtime import input_device
from .checkpoint import load_tokenizer, read_model_config

log = logging.getLogger(__name__)

REWARD_CONFIG_FILE = "reward_config.json"
REWARD_KINDS = ("helpfulness", "safety")

Messages = list[dict]


# --------------------------------------------------------------------------------------------- building


def build_reward_model(base_path: str | os.PathLike, dtype: torch.dtype | None = None, seed: int = 0):
    """``LlamaForSequenceClassification`` from a causal-LM (or reward-model) checkpoint directory.

    The transformer weights are loaded as they are; the LM head is dropped and a new scalar head
    ``score`` [1, hidden] is initialised (seeded, without touching the global RNG). Starting from an
    existing RM keeps its head, e.g. to initialise a safety RM from a helpfulness RM.
    """
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    read_model_config(base_path)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "score.weight newly initialized" is the point here, not a warning
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = AutoModelForSequenceClassification.from_pretrained(
                str(base_path), num_labels=1, dtype=dtype or torch.float32,
                use_safetensors=True, trust_remote_code=False,
            )
    finally:
        hf_logging.set_verbosity(verbosity)
    model.config.problem_type = "regression"
    if model.config.pad_token_id is None:  # placeholder until `prepare_tokenizer` sets the tokenizer's choice
        model.config.pad_token_id = model.config.eos_token_id
    return model


def prepare_tokenizer(model, tokenizer) -> None:
    """Give the tokenizer a pad token (unk, else eos) and record it in the model config.

    The pad id only fills the padded positions (they are masked out and never read); HF's own pooling
    refuses batches larger than one without some pad id in the config, so one is always set.
    """
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.unk_token if tokenizer.unk_token is not None else tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id


# ---------------------------------------------------------------------------------------------- loading


def read_reward_config(path: str | os.PathLike) -> dict:
    """``reward_config.json`` of an RM directory; {} for RMs trained elsewhere."""
    file = Path(path) / REWARD_CONFIG_FILE
    if not file.is_file():
        return {}
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{file}: not valid JSON ({e.msg}); fix it or delete it") from None


def load_reward_model(path: str | os.PathLike, dtype: torch.dtype | None = None, device: str | torch.device | None = None):
    """(model in eval mode, tokenizer with a pad token) from an RM directory; safetensors only, no remote code."""
    from transformers import AutoModelForSequenceClassification

    config = read_model_config(path)
    architectures = config.get("architectures") or []
    if not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise UserError(
            f"{path}: is a {', '.join(architectures) or 'model'} checkpoint, not a reward model; "
            "train one with `polyglot-llama reward --model <chat checkpoint>`"
        )
    if len(config.get("id2label") or {"0": "LABEL_0"}) != 1:
        raise UserError(f"{path}: the classification head has {len(config['id2label'])} outputs; a reward model has one")
    model = AutoModelForSequenceClassification.from_pretrained(
        str(path), dtype=dtype or torch.float32, use_safetensors=True, trust_remote_code=False,
    )
    tokenizer = load_tokenizer(path)
    prepare_tokenizer(model, tokenizer)
    if device is not None:
        model.to(device)
    model.eval()
    return model, tokenizer


# --------------------------------------------------------------------------------------------- encoding


def as_messages(prompt: str | Sequence[dict], where: str = "prompt") -> Messages:
    """A prompt as chat messages: a string is one user turn; a list must end with a user turn."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    messages = list(prompt)
    if not messages or not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
        raise UserError(f"{where}: give a string or a non-empty list of {{'role', 'content'}} messages")
    if messages[-1].get("role") != "user":
        raise UserError(f"{where}: the last prompt message must have role 'user', not {messages[-1].get('role')!r}")
    return messages


def encode_conversation(prompt: str | Sequence[dict], response: str, tokenizer) -> list[int]:
    """Token ids of prompt + response in the tokenizer's chat template (``polyglot_llama.chat``), end-of-turn included."""
    from ..chat import encode_dialog

    # A sampled answer may be empty (the policy emitted </s> at once): it is scored, not refused.
    input_ids, _ = encode_dialog(as_messages(prompt) + [{"role": "assistant", "content": response}], tokenizer,
                                 allow_empty_answers=True)
    return list(input_ids)


def context_length(model, tokenizer) -> int:
    """Longest sequence the RM scores: the model's positions, or the tokenizer's limit if smaller."""
    limit = int(getattr(model.config, "max_position_embeddings", 4096))
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < limit:
        limit = tokenizer_limit
    return limit


def pad_sequences(sequences: Sequence[Sequence[int]], pad_id: int, side: str = "right") -> tuple[torch.Tensor, torch.Tensor]:
    """Pad id lists to one length: (input_ids [B, T], attention_mask [B, T]), pads on ``side``."""
    if side not in ("left", "right"):
        raise ValueError(f"padding side must be 'left' or 'right', not {side!r}")
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        span = slice(width - len(seq), width) if side == "left" else slice(0, len(seq))
        input_ids[row, span] = torch.as_tensor(seq, dtype=torch.long)
        attention_mask[row, span] = 1
    return input_ids, attention_mask


# ---------------------------------------------------------------------------------------------- scoring


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last attended position per row: attention_mask [B, T] → [B] (left or right padding)."""
    positions = torch.arange(attention_mask.shape[-1], device=attention_mask.device)
    return (positions * attention_mask.long()).argmax(dim=-1)


def _unwrapped(model):
    # DDP / FSDP1 / DeepSpeed keep the HF model in `.module`, torch.compile in `._orig_mod`.
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or getattr(model, "_orig_mod")
    return model


def sequence_scores(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Scalar rewards [B] (fp32) read at each row's last non-pad token; differentiable.

    The forward goes through ``model`` itself (so DDP/FSDP wrappers see it); a hook on the scalar head
    captures its per-token output [B, T, 1], from which we take the position found by the mask.
    """
    head = _unwrapped(model).score
    captured: list[torch.Tensor] = []
    handle = head.register_forward_hook(lambda _module, _inputs, output: captured.append(output))
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    try:
        model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
    finally:
        handle.remove()
    per_token = captured[-1].squeeze(-1)  # [B, T]
    index = last_token_index(attention_mask).unsqueeze(-1)  # [B, 1]
    return per_token.gather(1, index).squeeze(1).float()


@torch.inference_mode()
def score(model, tokenizer, prompts: Sequence[str | Sequence[dict]], responses: Sequence[str], batch_size: int = 8,
          max_length: int | None = None, progress: bool = False, finished: Sequence[bool] | None = None) -> torch.Tensor:
    """Raw scalar scores [N] (fp32, CPU) of ``responses[i]`` to ``prompts[i]`` in the chat format.

    ``finished[i]`` False marks a sampled answer cut off before EOS: it is scored without the ``</s>``.
    Sequences longer than ``max_length`` (default: the model's context) keep their last ``max_length``
    tokens: the response end is where the score is read. Batches are formed from length-sorted
    sequences so little compute goes to padding; the result is in the input order.
    """
    if len(prompts) != len(responses):
        raise ValueError(f"score: {len(prompts)} prompts but {len(responses)} responses")
    if not prompts:
        return torch.empty(0)
    if tokenizer.pad_token_id is None:
        prepare_tokenizer(_unwrapped(model), tokenizer)
    limit = max_length or context_length(_unwrapped(model), tokenizer)
    encoded = [encode_conversation(p, r, tokenizer) for p, r in zip(prompts, responses)]
    if finished is not None:  # an answer cut at max_new_tokens is scored as it stands, without a closing </s>
        encoded = [ids if done or ids[-1] != tokenizer.eos_token_id else ids[:-1] for ids, done in zip(encoded, finished)]
    truncated = sum(len(ids) > limit for ids in encoded)
    if truncated:
        log.warning("score: %d of %d sequences exceed %d tokens; their prompts were cut from the left", truncated, len(encoded), limit)
    encoded = [ids[-limit:] for ids in encoded]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    device = input_device(_unwrapped(model))  # a CPU-offloaded RM keeps its weights on 'meta' between forwards
    scores = torch.empty(len(encoded), dtype=torch.float32)
    starts = range(0, len(order), batch_size)
    if progress:
        from ..progress import phase

        starts = phase(starts, desc="score", unit="batch")
    for start in starts:
        rows = order[start:start + batch_size]
        input_ids, attention_mask = pad_sequences([encoded[i] for i in rows], tokenizer.pad_token_id)
        scores[rows] = sequence_scores(model, input_ids.to(device), attention_mask.to(device)).cpu()
    return scores
