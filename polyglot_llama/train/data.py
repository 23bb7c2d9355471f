"""Pretraining data: tokenise JSONL/Parquet/plain-text corpora and pack them into fixed-length rows.

Each row is one language (documents are packed per language so validation loss can be reported per
language): ``input_ids`` [T], ``labels`` [T] (-100 where no loss), ``position_ids`` [T] and ``lang``.
Documents are laid out as ``<s> doc </s> <s> doc </s> ...``. With document masking, position ids restart
at every document, which makes transformers' Llama build a block-diagonal causal mask (no attention
across documents), and the first token of each document carries no loss (nothing before it predicts it).

Tokenised + packed datasets are cached as Arrow under ``cache_dir`` keyed by the input files (path, size,
mtime), the tokenizer and the packing options, so a second run does not re-tokenise.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from ..errors import UserError
from ..io import RejectCounter, cache_key, expand_inputs, iter_records, write_jsonl
from ..languages import normalize_language
from .loop import StepOutput
from .lm_head_loss import causal_lm_model_loss
from .losses import IGNORE_INDEX

log = logging.getLogger(__name__)


def read_documents(files: list[str], text_field: str, lang_field: str, default_lang: str,
                   rejects: RejectCounter) -> dict[str, list[str]]:
    """Group the non-empty texts of ``files`` by normalised language."""
    by_lang: dict[str, list[str]] = {}
    for record in iter_records(files, rejects, text_field=text_field):
        text = record[text_field]
        if not text.strip():
            continue
        lang = record.get(lang_field) or default_lang
        by_lang.setdefault(normalize_language(lang), []).append(text)
    return by_lang


def pack_ids(docs: list[list[int]], seq_len: int, bos_id: int, eos_id: int, document_masking: bool) -> list[dict]:
    """Concatenate ``<s> doc </s>`` streams and cut them into rows of ``seq_len`` tokens.

    The tail shorter than a row is padded with EOS, masked out of the loss and (under document masking)
    made its own segment, so no text is lost and padding is never attended to by real tokens.
    """
    ids, doc_start = [], []
    for doc in docs:
        piece = [bos_id, *doc, eos_id]
        ids += piece
        doc_start += [True] + [False] * (len(piece) - 1)
    rows = []
    for start in range(0, len(ids), seq_len):
        row_ids, starts = ids[start:start + seq_len], doc_start[start:start + seq_len]
        pad = seq_len - len(row_ids)
        labels = list(row_ids)
        if document_masking:
            positions, pos = [], 0
            for i, is_start in enumerate(starts):
                pos = 0 if (i == 0 or is_start) else pos + 1
                positions.append(pos)
                if is_start:
                    labels[i] = IGNORE_INDEX  # nothing in the same document predicts its first token
            positions += list(range(pad))
        else:
            positions = list(range(seq_len))
        rows.append({
            "input_ids": row_ids + [eos_id] * pad,
            "labels": labels + [IGNORE_INDEX] * pad,
            "position_ids": positions,
        })
    return rows


def build_packed_dataset(files: str | list[str], tokenizer, seq_len: int, *, text_field: str = "text",
                         lang_field: str = "lang", default_lang: str = "en", document_masking: bool = True,
                         cache_dir: str | Path | None = None, num_proc: int = 1, rejects_file: str | Path | None = None):
    """An Arrow dataset of packed rows (see the module docstring); cached when ``cache_dir`` is set."""
    import datasets

    files = expand_inputs(files)
    options = {"seq_len": seq_len, "text_field": text_field, "lang_field": lang_field, "default_lang": default_lang,
               "document_masking": document_masking, "version": 1}
    key = cache_key(files, tokenizer.backend_tokenizer.to_str(), json.dumps(options, sort_keys=True))
    cache_path = Path(cache_dir) / key if cache_dir else None
    if cache_path is not None and (cache_path / "dataset_info.json").is_file():
        log.info("packed dataset: reusing cache %s", cache_path)
        return datasets.load_from_disk(str(cache_path))

    rejects = RejectCounter()
    by_lang = read_documents(files, text_field, lang_field, default_lang, rejects)
    if rejects.count:
        log.warning("skipped %d malformed records in %s: %s", rejects.count, files, rejects.by_reason())
        if rejects_file:
            write_jsonl(rejects_file, rejects.rejected)
    if not by_lang:
        raise UserError(f"{files}: the corpus has no usable text in field '{text_field}' ({rejects.count} records rejected)")

    rows: list[dict] = []
    for lang, texts in sorted(by_lang.items()):
        docs = datasets.Dataset.from_dict({"text": texts}).map(
            lambda batch: {"ids": tokenizer(batch["text"], add_special_tokens=False)["input_ids"]},
            batched=True, num_proc=num_proc if len(texts) > 1000 else None, remove_columns=["text"],
            desc=f"tokenising {lang}",
        )["ids"]
        for row in pack_ids(docs, seq_len, tokenizer.bos_token_id, tokenizer.eos_token_id, document_masking):
            rows.append({**row, "lang": lang})
    dataset = datasets.Dataset.from_list(rows)
    if cache_path is not None:
        dataset.save_to_disk(str(cache_path))
    return dataset


def split_by_language(dataset) -> dict:
    """{lang: subset} of a packed dataset."""
    langs = dataset.unique("lang")
    return {lang: dataset.filter(lambda row, lang=lang: row["lang"] == lang) for lang in sorted(langs)}


def collate_packed(rows: list[dict]) -> dict[str, torch.Tensor]:
    """Stack packed rows: input_ids/labels/position_ids [B, T]."""
    return {key: torch.tensor([row[key] for row in rows], dtype=torch.long) for key in ("input_ids", "labels", "position_ids")}


def causal_lm_step(model, batch: dict):
    """Forward a packed batch; position ids restart per document, so no attention crosses documents."""
    loss, n_tokens = causal_lm_model_loss(model, batch["labels"], input_ids=batch["input_ids"],
                                          position_ids=batch["position_ids"])
    return StepOutput(loss=loss, n_tokens=n_tokens)
