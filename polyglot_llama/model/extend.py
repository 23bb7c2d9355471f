"""`polyglot-llama model extend`: resize a model's input embeddings and LM head to an extended tokenizer.

Old rows (ids of the model's own tokenizer) are copied bit for bit; rows of the new ids are initialised
by `embedding_init` (``distill`` by default: subword-mean rows fitted to the original model's predictions,
`distill_init`); rows added only to reach ``pad_to_multiple_of`` get the
mean of the old rows (no token maps to them; a multiple of 64 makes the LM-head matmul faster on GPUs).
The output directory is a normal HF checkpoint plus ``new_tokens.json``, which continued pretraining reads
to train only the new rows first.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import yaml
from tokenizers import Tokenizer

from ..config import resolved_config_path, write_resolved_config
from ..errors import UserError
from ..io import RejectCounter, expand_inputs, iter_records
from ..languages import normalize_language
from .bits_per_byte import bits_per_byte, context_token
from .checkpoint import load_causal_lm, read_model_config, save_checkpoint
from .distill_init import distill_new_rows
from .embedding_init import LOGIT_OFFSET, logit_shift_direction, new_rows, old_subword_ids

log = logging.getLogger(__name__)
# Bits per byte after / before above which the summary says what to do: extension should cost at most 2 %.
ADVISE_ABOVE = 1.02


@dataclass
class ModelExtendConfig:
    model: str = ""
    """Model directory (HF Llama checkpoint) whose tokenizer the new tokenizer extends."""
    tokenizer: str = ""
    """Extended tokenizer directory (from `polyglot-llama tokenizer extend`)."""
    init: Literal["distill", "subword-mean", "mean", "random"] = "distill"
    """New rows: subword-mean rows fitted so the model predicts what the original predicts (distill), mean of the rows
    of the old pieces of each new token (subword-mean), mean of all old rows, or random."""
    init_text: list[str] = field(default_factory=list)
    """init distill: target-language text (JSONL with ``text``) the original model is distilled on; empty: the text
    `tokenizer extend` learnt from (its resolved config in --tokenizer), else the new tokens' own spellings.
    Never the held-out text."""
    init_steps: int = 480
    """init distill: Adam steps on the new rows (2 chunks of text each). On SmolLM2 + 300 Korean tokens distilled on
    the 40 paragraphs they were learnt from, held-out Korean bits per byte after 48 / 120 / 240 steps (last rows):
    +32.8 / +23.8 / +13.7 % over the original, English +0.0 / +0.7 / +0.6 %; after 480 with the last half averaged
    +8.8 %, English +0.4 % (docs/tokenizer.md). Cost: a forward and backward pass over 2 chunks a step;
    480 steps took 25 min for SmolLM2 on one CPU core (not measured on a GPU)."""
    init_lr: float = 3e-3
    """init distill: Adam learning rate."""
    init_average_last: float = 0.5
    """init distill: the new rows kept are the mean of the rows after each of this share of the fit's last steps
    (tail averaging, as in stochastic weight averaging); 0 = the last step's rows. Past ~240 steps on SmolLM2/Korean
    the last rows wander without improving held out (+14.4 % at 480 steps) and their mean over the last half is lower
    (+9.0 % in the same run); a fit of a few dozen steps is still improving and should keep its last rows (48 steps:
    +32.8 % last, +36.1 % averaged; docs/tokenizer.md)."""
    init_max_tokens: int = 200_000
    """init distill: at most this many old-tokenizer tokens of text are read and cut into chunks; a step draws 2, and
    the original model reads a chunk (one forward) when a step first draws it, so the cost is set by init_steps.
    More text, less overfitting: 48 steps over 15 chunks (2,500 tokens, the default before) +53.5 %, over all 78
    chunks of the 40 paragraphs +32.8 % (docs/tokenizer.md)."""
    init_hidden_weight: float = 0.0
    """init distill: weight of matching the original model's hidden states, every layer, after each new token
    (against the state after the token's last old piece); 0 = output distributions only. No measured gain on
    SmolLM2/Korean (docs/tokenizer.md)."""
    untie_head: bool = False
    """A tied model gets its own LM head (a copy of the embeddings; the checkpoint grows by one V x H matrix)
    so that the new tokens' input rows (what reading them means) and output rows (how probable they are)
    are set apart; ``tie_word_embeddings`` becomes false. Untied models are unaffected. On SmolLM2/Korean, bits per
    byte after extend: +66.9 % against +73.6 % tied at 12 fit steps, +52.9 % against +53.5 % at 48 (docs/tokenizer.md)."""
    init_chunk_chars: int = 150
    """init distill: the text is cut into chunks of this many characters."""
    output: str = ""
    """Directory to write the extended model (weights, config, tokenizer files, new_tokens.json)."""
    pad_to_multiple_of: int = 0
    """Round the number of embedding rows up to a multiple of this (64 is fast on GPUs); 0 = no padding."""
    base_tokenizer: str = ""
    """The model's own (old) tokenizer directory; default: the tokenizer files inside --model."""
    seed: int = 0
    """Seed of the random init."""
    logit_offset: float = LOGIT_OFFSET
    """Nats added to every new token's starting logit (negative: less probable), along the direction of the
    model's mean final hidden state, where it shifts all logits alike (see embedding_init.logit_shift_direction)."""
    eval_text: list[str] = field(default_factory=list)
    """Held-out text (JSONL with ``text``/``lang``) to report bits per byte on, per language, before and after.
    Empty, with init distill: the first eval_max_records records of the init text that the fit does not reach."""
    eval_max_records: int = 8
    """Records per language used for the bits-per-byte report."""
    eval_max_chars: int = 400
    """Characters per record used for the bits-per-byte report (the same text for both tokenizers)."""
    trust_remote_code: bool = False
    """Run model code shipped with the checkpoint (auto_map). Off: such checkpoints are refused."""

    def __post_init__(self):
        for key in ("model", "tokenizer", "output"):
            if not getattr(self, key):
                raise UserError(f"key '{key}' is required (model extend needs --model, --tokenizer and --output)")
        if self.eval_max_records < 1 or self.eval_max_chars < 1:
            raise UserError("keys 'eval_max_records' and 'eval_max_chars' must be at least 1")
        if self.init_steps < 0:
            raise UserError(f"key 'init_steps' is {self.init_steps}; give 0 (subword-mean rows, no fitting) or more")
        if not 0 <= self.init_average_last <= 1:
            raise UserError(f"key 'init_average_last' is {self.init_average_last}; give a share of the fit's steps "
                            "from 0 (the last step's rows) to 1 (the mean over every step)")
        if self.init_hidden_weight < 0:
            raise UserError(f"key 'init_hidden_weight' is {self.init_hidden_weight}; give 0 (output distributions only) or more")
        for key in ("init_lr", "init_max_tokens", "init_chunk_chars"):
            if not getattr(self, key) > 0:
                raise UserError(f"key '{key}' is {getattr(self, key)}; it must be positive")
        if self.pad_to_multiple_of < 0:
            raise UserError(f"key 'pad_to_multiple_of' is {self.pad_to_multiple_of}; use 0 (no padding) or e.g. 64")


def average_from(cfg: ModelExtendConfig) -> int:
    """The first fit step whose new rows enter the mean kept (``init_average_last`` of ``init_steps`` rounded up), 0 for
    none: 0.75 of 480 steps averages steps 121-480."""
    taken = math.ceil(round(cfg.init_average_last * cfg.init_steps, 6))  # 0.7 x 10 is 7.000000000000001 in floats
    return cfg.init_steps - taken + 1 if taken else 0


def _read_tokenizer(directory: str, role: str) -> Tokenizer:
    file = Path(directory) / "tokenizer.json"
    if not file.is_file():
        raise UserError(f"{directory}: no tokenizer.json for the {role} tokenizer; "
                        + ("give --base-tokenizer" if role == "old" else "give a directory from `polyglot-llama tokenizer extend`"))
    return Tokenizer.from_file(str(file))


def new_token_ids(old: Tokenizer, new: Tokenizer, old_dir: str, new_dir: str) -> tuple[int, int, list[int]]:
    """(old size, new size, ids the new tokenizer adds); a one-line error unless new extends old."""
    old_vocab, new_vocab = old.get_vocab(with_added_tokens=True), new.get_vocab(with_added_tokens=True)
    for token, id_ in old_vocab.items():
        if new_vocab.get(token) != id_:
            here = "is missing here" if token not in new_vocab else f"has id {new_vocab[token]} here"
            raise UserError(f"{new_dir} does not extend the model's tokenizer {old_dir}: token {token!r} (id {id_} there) "
                            f"{here}; extend the model's own tokenizer")
    old_size, new_size = max(old_vocab.values()) + 1, max(new_vocab.values()) + 1
    added = sorted(i for t, i in new_vocab.items() if t not in old_vocab)
    if not added:
        raise UserError(f"{new_dir} adds no tokens to the model's tokenizer {old_dir}; run `polyglot-llama tokenizer extend` first")
    return old_size, new_size, added


def _checkpoint_dtype(model_config: dict) -> torch.dtype:
    name = model_config.get("dtype") or model_config.get("torch_dtype") or "float32"
    return getattr(torch, name) if isinstance(name, str) and isinstance(getattr(torch, name, None), torch.dtype) else torch.float32


@torch.no_grad()
def _fill(weight: torch.Tensor, start: int, stop: int, rows: torch.Tensor) -> None:
    weight[start:stop] = rows.to(weight.dtype)


def texts_by_language(records, cfg: ModelExtendConfig, default_lang: str = "und") -> dict[str, list[str]]:
    """Up to ``eval_max_records`` texts per language (``lang`` field, else ``default_lang``), each cut to
    ``eval_max_chars``."""
    by_lang = defaultdict(list)
    for record in records:
        lang = record.get("lang") or default_lang
        try:
            lang = normalize_language(lang) if lang != "und" else lang
        except UserError:
            pass
        if record["text"].strip() and len(by_lang[lang]) < cfg.eval_max_records:
            by_lang[lang].append(record["text"][:cfg.eval_max_chars])
    return dict(sorted(by_lang.items()))


def read_eval_text(cfg: ModelExtendConfig) -> dict[str, list[str]]:
    """``texts_by_language`` of ``eval_text`` ({} when none is given); a one-line error when it holds no text."""
    if not cfg.eval_text:
        return {}
    rejects = RejectCounter()
    by_lang = texts_by_language(iter_records(expand_inputs(cfg.eval_text), rejects), cfg)
    if not by_lang:
        raise UserError(f"{cfg.eval_text}: no text to measure bits per byte on ({rejects.count} records rejected: "
                        f"{rejects.by_reason()}); give JSONL with a 'text' field")
    return by_lang


def _tokenizer_extend_config(tokenizer_dir: str) -> dict:
    """`tokenizer extend`'s resolved config in the tokenizer directory, {} when it is missing or unreadable."""
    try:
        config = yaml.safe_load(resolved_config_path(tokenizer_dir, "tokenizer extend").read_text(encoding="utf-8"))
        return config if isinstance(config, dict) else {}
    except (OSError, yaml.YAMLError):
        return {}


def tokenizer_training_text(tokenizer_dir: str) -> list[str]:
    """The input files `tokenizer extend` learnt the new tokens from (its resolved config in the tokenizer
    directory), when they all still exist; else []."""
    inputs = _tokenizer_extend_config(tokenizer_dir).get("input") or []
    try:
        return [str(p) for p in inputs] if inputs and all(expand_inputs([str(p)]) for p in inputs) else []
    except (UserError, TypeError):
        return []


def distill_documents(cfg: ModelExtendConfig, old: Tokenizer, new: Tokenizer, added: list[int],
                      pieces_of) -> tuple[str, list[tuple[list[int], list[int]]], int, list[dict]]:
    """(source, [(old ids, new ids)], records rejected, unread records) of the text the distill init reads:
    chunks of ``init_text`` (``init_chunk_chars`` characters each), by default the text `tokenizer extend`
    learnt from; without either, the new tokens' own spellings 32 tokens at a time; at most ``init_max_tokens``
    old ids in all. Unread: up to ``eval_max_records`` whole records after the last one read (held-out text)."""
    documents, unread, budget = [], [], cfg.init_max_tokens
    text = cfg.init_text or tokenizer_training_text(cfg.tokenizer)
    if text:
        rejects = RejectCounter()
        for record in iter_records(expand_inputs(text), rejects):
            if budget <= 0:
                if record["text"].strip():
                    unread.append(record)
                if len(unread) == cfg.eval_max_records:
                    break
                continue
            for k in range(0, len(record["text"]), cfg.init_chunk_chars):
                chunk = record["text"][k:k + cfg.init_chunk_chars]
                if budget <= 0:
                    break
                if chunk.strip():
                    old_ids, new_ids = old.encode(chunk, add_special_tokens=False).ids, new.encode(chunk, add_special_tokens=False).ids
                    documents.append((old_ids, new_ids))
                    budget -= len(old_ids)
        if not documents:
            raise UserError(f"{text}: no text to distil the new rows on ({rejects.count} records rejected: "
                            f"{rejects.by_reason()}); give --init-text JSONL with a 'text' field")
        return ", ".join(text), documents, rejects.count, unread
    spelled = [i for i in added if pieces_of(i)]
    for k in range(0, len(spelled), 32):
        if budget <= 0:
            break
        new_ids = spelled[k:k + 32]
        documents.append(([o for i in new_ids for o in pieces_of(i)], new_ids))
        budget -= len(documents[-1][0])
    return "the new tokens' spellings", documents, 0, []


def extension_advice(report: dict[str, dict], init: str) -> str | None:
    """What to do when a language's held-out bits per byte rose more than 2 % (``report``: language -> before,
    after, change), else None. Measured (docs/tokenizer.md): with the distill init the fit text decides; held-out
    text of a kind it read at length ends below the original, text of a kind it lacks stays 10-17 % above however
    long the fit runs."""
    worse = [f"{lang} {row['change']}" for lang, row in report.items() if row["after"] > ADVISE_ABOVE * row["before"]]
    if not worse:
        return None
    fix = ("give --init-text more text of the held-out text's kind (or more --init-steps)" if init == "distill"
           else "use --init distill (the default), which fits the new rows to the original model")
    return (f"bits per byte rose more than {100 * (ADVISE_ABOVE - 1):.0f} % ({', '.join(worse)}): {fix}, then train "
            "the new rows on that text (pretrain's new_embeddings stage); see docs/tokenizer.md")


def run(cfg: ModelExtendConfig) -> dict:
    started = time.time()
    model_config = read_model_config(cfg.model, cfg.trust_remote_code)
    old_dir = cfg.base_tokenizer or cfg.model
    old, new = _read_tokenizer(old_dir, "old"), _read_tokenizer(cfg.tokenizer, "new")
    old_size, new_size, added = new_token_ids(old, new, old_dir, cfg.tokenizer)
    rows_before = int(model_config["vocab_size"])
    if rows_before < old_size:
        raise UserError(f"{cfg.model}: the model has {rows_before} embedding rows but its tokenizer {old_dir} has "
                        f"{old_size} tokens; they do not belong together (give the right --base-tokenizer)")
    multiple = cfg.pad_to_multiple_of or 1
    rows_after = max(rows_before, math.ceil(new_size / multiple) * multiple)

    new_set = set(added)
    specials = {t.content for t in new.get_added_tokens_decoder().values() if t.special}
    id_to_token = {i: t for t, i in new.get_vocab(with_added_tokens=True).items()}
    fresh = list(range(old_size, new_size))  # every row from the old size up is (re)initialised
    pieces = [id_to_token.get(i) for i in fresh]
    spelled = [p if (i in new_set and p is not None and p not in specials) else None for i, p in zip(fresh, pieces)]
    subwords = [ids if p is not None else None
                for p, ids in zip(spelled, old_subword_ids(old, [p or "" for p in spelled]))]
    by_id = dict(zip(fresh, subwords))
    pieces_of = lambda i: [i] if i < old_size else (by_id.get(i) or [])  # noqa: E731
    eval_source = ", ".join(cfg.eval_text)
    eval_text = read_eval_text(cfg)
    if cfg.init == "distill":
        source, documents, rejected, unread = distill_documents(cfg, old, new, added, pieces_of)
        if not eval_text and unread:  # held out: records of the init text that the fit never reads
            eval_source = f"{len(unread)} records of {source} after those the distill init reads"
            eval_text = texts_by_language(unread, cfg, _tokenizer_extend_config(cfg.tokenizer).get("lang") or "und")
    model = load_causal_lm(cfg.model, dtype=_checkpoint_dtype(model_config), trust_remote_code=cfg.trust_remote_code)
    head = model.get_output_embeddings()
    if cfg.untie_head and head is None:  # before the bits-per-byte pass, which costs minutes on a 7B
        raise UserError(f"untie_head: {cfg.model} ({type(model).__name__}) has no output-embedding module to give "
                        "weights of its own; run without --untie-head")
    tied = head is None or head.weight is model.get_input_embeddings().weight
    before = {lang: bits_per_byte(model, old, texts, cfg.eval_max_chars) for lang, texts in eval_text.items()}
    # Copies of the old rows (bf16 for a 7B: 32000 x 4096 x 2 B = 262 MB each) to compute the new rows from.
    old_in = model.get_input_embeddings().weight[:old_size].detach().clone()
    old_out = None if tied else head.weight[:old_size].detach().clone()
    model.resize_token_embeddings(rows_after, mean_resizing=False)

    generator = torch.Generator().manual_seed(cfg.seed)
    std = float(getattr(model.config, "initializer_range", 0.02))
    # The model reads the new tokens' spellings in old ids, which the resized (not yet filled) rows do not affect.
    shift = logit_shift_direction(model, old, [p for p in spelled if p is not None]) * cfg.logit_offset if cfg.logit_offset else None
    # Padding rows only grow the matrix; rows that existed already beyond new_size are kept as they were.
    pad = list(range(max(new_size, rows_before), rows_after))
    matrices = [(model.get_input_embeddings().weight, old_in)] + ([] if tied else [(model.get_output_embeddings().weight, old_out)])
    for k, (weight, old_rows) in enumerate(matrices):
        rows = new_rows(old_rows, "subword-mean" if cfg.init == "distill" else cfg.init, subwords, std, generator)
        if shift is not None and (tied or k == 1):  # the offset acts through the output rows
            rows += shift
        _fill(weight, old_size, new_size, rows)
        if pad:
            _fill(weight, pad[0], rows_after, new_rows(old_rows, "mean", [None] * len(pad), std, generator))
    untied = bool(tied and cfg.untie_head)
    if untied:  # one V x H copy; from here on the old rows of both matrices are still the original's
        model.get_output_embeddings().weight = torch.nn.Parameter(model.get_input_embeddings().weight.detach().clone())
        model.config.tie_word_embeddings = False
        log.info("untied the LM head of %s (tie_word_embeddings: false)", cfg.model)
    distilled = None
    if cfg.init == "distill":
        distilled = {"text": source, "rejected_records": rejected, **distill_new_rows(model, old_size, added, documents, pieces_of, context_token(old),
                                                        cfg.init_steps, cfg.init_lr, 2, generator,
                                                        cfg.init_hidden_weight, average_from(cfg))}
        log.info("distill init: %s", distilled)

    record = {"old_vocab_size": old_size, "new_token_ids": added, "init": cfg.init, "tokenizer": str(cfg.tokenizer),
              "base_tokenizer": str(old_dir), "new_vocab_size": new_size, "embedding_rows": rows_after,
              "pad_to_multiple_of": cfg.pad_to_multiple_of, "logit_offset": cfg.logit_offset, "untied_head": untied}
    if distilled is not None:
        record["distill"] = distilled
    after = {lang: bits_per_byte(model, new, texts, cfg.eval_max_chars) for lang, texts in eval_text.items()}
    report = {lang: {"before": round(before[lang], 4), "after": round(after[lang], 4),
                     "change": f"{100 * (after[lang] / before[lang] - 1):+.1f}%"} for lang in eval_text}
    save_checkpoint(model, cfg.output, tokenizer_dir=cfg.tokenizer,
                    extra_files={"new_tokens.json": json.dumps(record) + "\n"})
    for lang, row in report.items():
        log.info("bits per byte %s: %.4f -> %.4f (%s)", lang, row["before"], row["after"], row["change"])
    if advice := extension_advice(report, cfg.init):
        log.warning(advice)
    write_resolved_config(cfg, cfg.output, "model extend")
    log.info("resized %s: %d -> %d rows (%d new tokens, init %s, tied=%s)", cfg.model, rows_before, rows_after, len(added), cfg.init, tied)
    return {"output": str(cfg.output), "old_vocab_size": old_size, "new_vocab_size": new_size, "new_tokens": len(added),
            "embedding_rows_before": rows_before, "embedding_rows": rows_after, "tied_embeddings": tied and not untied,
            "untied_head": untied,
            "init": cfg.init, "logit_offset": cfg.logit_offset, "bits_per_byte": report,
            **({"bits_per_byte_text": eval_source} if report else {}),
            **({"advice": advice} if advice else {}),
            **({"distill": distilled} if distilled is not None else {}),
            "model_type": model.config.model_type, "dtype": str(model.dtype).removeprefix("torch."),
            "seconds": round(time.time() - started, 2)}
