"""`polyglot-llama sft`: supervised fine-tuning in the model's chat template, loss on answers only.

Conversations (see `sft_data`) are encoded with the tokenizer's own chat template (`polyglot_llama.chat`;
Llama 2's format when it has none), packed several to a
row without attention or loss across them, and trained with the one training loop. Defaults are Llama 2's
SFT recipe (§3.1): lr 2e-5 with a cosine schedule, weight decay 0.1, 2 epochs, sequence length 4096 and a
batch of 64 sequences. Validation loss is reported per language (``lang`` of the records).

The output directory is a Hugging Face model directory whose tokenizer carries the chat template used, plus
``checkpoints/`` (resume), ``logs/``, ``metrics.jsonl``, ``rejected_records.jsonl`` and ``sft_summary.json``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..chat import check_template_spec, install_chat_template, resolve_template
from ..config import to_dict, write_resolved_config
from ..errors import UserError
from ..io import RejectCounter, expand_inputs, write_json, write_jsonl
from ..model.checkpoint import check_vocab_matches, load_causal_lm, load_tokenizer, read_model_config
from .data import causal_lm_step
from .loop import LoopConfig, OptimConfig, ScheduleConfig, save_final, train
from .loop import resolve_grad_accum as shared_resolve_grad_accum
from .sft_data import Conversation, encode_conversations, load_conversations, make_collate, pack_examples

log = logging.getLogger(__name__)


@dataclass
class SFTDataConfig:
    train: list[str] = field(default_factory=list)
    """Training conversations: globs of JSONL(.gz/.zst)/Parquet with 'messages' (or 'prompt'+'response') and optional 'lang'."""
    validation: list[str] = field(default_factory=list)
    """Held-out conversations for per-language validation loss; empty: hold out validation_fraction of each language."""
    validation_fraction: float = 0.02
    """Share of each language's conversations held out when no validation files are given (0 = no validation)."""
    lang_field: str = "lang"
    """Name of the language field; records without it get default_lang."""
    default_lang: str = "en"
    """Language of records without a language field."""
    seq_len: int = 4096
    """Tokens per packed row (Llama 2: 4096); at most the model's max_position_embeddings."""
    packing: bool = True
    """Pack several conversations into each row (no attention or loss across them); false: one per row."""
    overlong: Literal["truncate", "drop"] = "truncate"
    """A conversation longer than seq_len: cut to its first seq_len tokens, or drop it (both counted)."""

    def __post_init__(self):
        if not self.train:
            raise UserError("key 'data.train' is required: globs of JSONL/Parquet conversation files")
        if not 0 <= self.validation_fraction < 1:
            raise UserError(f"key 'data.validation_fraction' is {self.validation_fraction}; it must be in [0, 1)")
        if self.seq_len < 16:
            raise UserError(f"key 'data.seq_len' is {self.seq_len}; use at least 16 (Llama 2: 4096)")


@dataclass
class SFTConfig:
    model: str = ""
    """Starting checkpoint: a Hugging Face Llama directory (pretrained or from an earlier round)."""
    output: str = ""
    """Output directory: the fine-tuned model (HF format) with checkpoints/, logs, rejects and a summary."""
    tokenizer: str = ""
    """Tokenizer directory (default: the model directory)."""
    chat_template: str = ""
    """Chat template: '' = the tokenizer's own (Llama 2's format when it has none), 'llama2', or a Jinja template as a string or file path; answers (the loss) come from its {% generation %} blocks or from rendering each answer's prefix."""
    data: SFTDataConfig = field(default_factory=SFTDataConfig)
    batch_size: int = 64
    """Global batch in packed rows per optimizer step (Llama 2: 64); sets loop.grad_accum = batch_size / (micro_batch_size × processes). 0 = use loop.grad_accum as given."""
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(epochs=2.0, micro_batch_size=4, log_every=10))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2.0e-5, weight_decay=0.1))
    schedule: ScheduleConfig = field(default_factory=lambda: ScheduleConfig(kind="cosine", warmup_steps=0, warmup_ratio=0.03))

    def __post_init__(self):
        if not self.model:
            raise UserError("key 'model' is required: the Llama checkpoint directory to fine-tune")
        if not self.output:
            raise UserError("key 'output' is required: the directory to write the fine-tuned model to")
        if self.batch_size < 0:
            raise UserError(f"key 'batch_size' is {self.batch_size}; give a positive number of rows or 0")
        check_template_spec(self.chat_template)


def resolve_grad_accum(cfg: SFTConfig, world_size: int) -> int:
    """Micro-batches per optimizer step so that micro_batch_size × accumulation × processes = batch_size."""
    return shared_resolve_grad_accum(cfg.batch_size or cfg.loop.global_batch_size, cfg.loop.micro_batch_size,
                                     world_size, cfg.loop.grad_accum, key="batch_size" if cfg.batch_size else "loop.global_batch_size")


def hold_out(conversations: list[Conversation], fraction: float, seed: int) -> tuple[list[Conversation], dict[str, list[Conversation]]]:
    """(train, {lang: validation}): a seeded ``fraction`` of each language's conversations, at least one."""
    if fraction == 0:
        return conversations, {}
    by_lang: dict[str, list[Conversation]] = {}
    for conv in conversations:
        by_lang.setdefault(conv.lang, []).append(conv)
    train_part, validation = [], {}
    for lang, group in sorted(by_lang.items()):
        group = group[:]
        random.Random(f"{seed}:{lang}").shuffle(group)
        n_val = max(1, round(len(group) * fraction)) if len(group) > 1 else 0
        if n_val:
            validation[lang] = group[:n_val]
        train_part.extend(group[n_val:])
    return train_part, validation


def run(cfg: SFTConfig) -> dict:
    output = Path(cfg.output)
    tokenizer_dir = cfg.tokenizer or cfg.model
    max_positions = read_model_config(cfg.model).get("max_position_embeddings", 0)
    if cfg.data.seq_len > max_positions:
        raise UserError(f"key 'data.seq_len' is {cfg.data.seq_len} but {cfg.model} supports at most "
                        f"{max_positions} positions; lower data.seq_len")
    tokenizer = load_tokenizer(tokenizer_dir)
    template = resolve_template(cfg.chat_template, tokenizer, tokenizer_dir)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    loop = dataclasses.replace(cfg.loop, grad_accum=resolve_grad_accum(cfg, world_size), global_batch_size=0)
    output.mkdir(parents=True, exist_ok=True)
    write_resolved_config(cfg, output, "sft")

    rejects = RejectCounter()
    conversations = load_conversations(expand_inputs(cfg.data.train), rejects, cfg.data.lang_field, cfg.data.default_lang)
    if cfg.data.validation:
        validation = load_conversations(expand_inputs(cfg.data.validation), rejects, cfg.data.lang_field, cfg.data.default_lang)
        train_convs, val_by_lang = conversations, {}
        for conv in validation:
            val_by_lang.setdefault(conv.lang, []).append(conv)
    else:
        train_convs, val_by_lang = hold_out(conversations, cfg.data.validation_fraction, loop.seed)

    encode = dict(tokenizer=tokenizer, seq_len=cfg.data.seq_len, rejects=rejects, overlong=cfg.data.overlong, template=template)
    train_examples, stats = encode_conversations(train_convs, **encode)
    train_rows = pack_examples(train_examples, cfg.data.seq_len, cfg.data.packing)
    eval_sets = {}
    for lang, convs in sorted(val_by_lang.items()):
        examples, _ = encode_conversations(convs, **encode)
        if examples:
            eval_sets[lang] = pack_examples(examples, cfg.data.seq_len, cfg.data.packing)
    rejects_file = output / "rejected_records.jsonl"
    write_jsonl(rejects_file, rejects.rejected)
    if rejects.count:
        log.warning("sft: %d records rejected %s; see %s", rejects.count, rejects.by_reason(), rejects_file)
    if not train_rows:
        raise UserError(f"{cfg.data.train}: no usable training conversation ({rejects.count} rejected: "
                        f"{rejects.by_reason()}); see {rejects_file}")
    fill = stats.tokens / (len(train_rows) * cfg.data.seq_len)
    log.info("sft: %d conversations (%d truncated) in %d rows of ≤%d tokens (%.0f%% full), %d answer tokens",
             stats.conversations, stats.truncated, len(train_rows), cfg.data.seq_len, 100 * fill, stats.answer_tokens)

    model = load_causal_lm(cfg.model)
    check_vocab_matches(model, tokenizer, cfg.model, tokenizer_dir)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    result = train(model, train_rows, make_collate(pad_id), causal_lm_step, output, loop=loop, optim=cfg.optim,
                   schedule=cfg.schedule, eval_sets=eval_sets, run_config=to_dict(cfg))
    model = result.pop("model")
    save_final(model, output, tokenizer_dir=tokenizer_dir)
    summary = {
        "output": str(output),
        "conversations": {"train": stats.conversations, "truncated": stats.truncated,
                          "validation": {lang: len(c) for lang, c in val_by_lang.items()}},
        "rows": len(train_rows),
        "packing_fill": round(fill, 4),
        "answer_tokens": stats.answer_tokens,
        "rejected": {"count": rejects.count, "by_reason": rejects.by_reason(), "file": str(rejects_file)},
        "grad_accum": loop.grad_accum,
        "steps": result["steps"],
        "train_loss": result["train_loss"],
        "eval_before": result["eval_before"],
        "eval": result["eval"],
        "tokens_per_second": result["tokens_per_second"],
    }
    if result["is_main_process"]:
        install_chat_template(output, template)
        write_json(output / "sft_summary.json", summary)
    return summary
