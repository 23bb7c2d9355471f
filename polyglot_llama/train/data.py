"""Pretraining data: tokenise JSONL/Parquet/plain-text corpora and pack them into fixed-length rows.

Each row is one language (documents are packed per language so validation loss can be reported per
language): ``input_ids`` [T], ``labels`` [T] (-100 where no loss), ``position_ids`` [T] and ``lang``.
Documents are laid out as the model expects them (`document_boundaries`): each ends with the model's
end-of-text token, and starts with a BOS only if the tokenizer itself adds one, e.g. ``<s> doc </s> <s> doc
</s>`` for Llama 2, ``doc <|endoftext|> doc <|endoftext|>`` for SmolLM2 or Qwen, whose eos ``<|im_end|>``
closes chat turns. With document masking, position ids restart at every document, which makes
transformers' Llama build a block-diagonal causal mask (no attention across documents), and the first
token of each document carries no loss (nothing before it predicts it).

Tokenised + packed datasets are cached as Arrow under ``cache_dir`` keyed by the input files (path, size,
mtime), the tokenizer and the packing options, so a second run does not re-tokenise.
"""

from __future__ import annotations

import json
import logging
import re
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


END_OF_TEXT_NAMES = ("<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>")
"""Names that mean "end of a document" by convention (GPT-2/Qwen/SmolLM, Llama 3, Llama 2/Mistral, Gemma)."""
_TURN_MARKER = re.compile(r"im_end|eot|end_of_turn|end_turn", re.IGNORECASE)


def document_boundaries(tokenizer, end_of_text: str = "") -> tuple[int | None, int]:
    """(BOS id or None, end-of-text id) around each pretraining document.

    BOS: only if the tokenizer adds one itself when encoding text (its post-processor / ``add_bos_token``).
    End of text: ``end_of_text`` if given; else the eos token unless it closes chat turns (its name is in
    `END_OF_TEXT_NAMES`, or it is neither written literally by the tokenizer's chat template nor named like a
    turn end); else the first of `END_OF_TEXT_NAMES` in the vocabulary. A chat model trained on text ending
    in its turn marker would learn to end chat turns where documents end; its pretraining saw ``<|endoftext|>``.
    """
    vocab = tokenizer.get_vocab()
    if end_of_text:
        if end_of_text not in vocab:
            raise UserError(f"key 'data.end_of_text': {end_of_text!r} is not a token of the tokenizer; give one of its "
                            f"special tokens, e.g. {tokenizer.eos_token!r}")
        end_id = vocab[end_of_text]
    else:
        eos = tokenizer.eos_token
        template = str(tokenizer.chat_template or "")  # a dict of named templates: searched as its text
        turn_marker = eos is None or (eos not in END_OF_TEXT_NAMES and (eos in template or _TURN_MARKER.search(eos)))
        name = next((n for n in END_OF_TEXT_NAMES if n in vocab), None) if turn_marker else eos
        if name is None:
            raise UserError(f"the tokenizer's eos {eos!r} closes chat turns and it has none of "
                            f"{', '.join(END_OF_TEXT_NAMES)}; set key 'data.end_of_text' to its end-of-text token")
        end_id = vocab[name]
    probe = tokenizer("a")["input_ids"]
    bos = tokenizer.bos_token_id
    return (bos if bos is not None and probe and probe[0] == bos else None), end_id


def pack_ids(docs: list[list[int]], seq_len: int, bos_id: int | None, eos_id: int, document_masking: bool) -> list[dict]:
    """Concatenate ``[bos] doc eos`` streams (``eos_id``: the end-of-text token; no BOS when ``bos_id`` is
    None) and cut them into rows of ``seq_len`` tokens.

    The tail shorter than a row is padded with ``eos_id``, masked out of the loss and (under document
    masking) made its own segment, so no text is lost and padding is never attended to by real tokens.
    """
    ids, doc_start = [], []
    for doc in docs:
        piece = ([] if bos_id is None else [bos_id]) + [*doc, eos_id]
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
                         end_of_text: str = "", cache_dir: str | Path | None = None, num_proc: int = 1, rejects_file: str | Path | None = None):
    """An Arrow dataset of packed rows (see the module docstring); cached when ``cache_dir`` is set."""
    import datasets

    files = expand_inputs(files)
    bos_id, end_id = document_boundaries(tokenizer, end_of_text)
    options = {"seq_len": seq_len, "text_field": text_field, "lang_field": lang_field, "default_lang": default_lang,
               "document_masking": document_masking, "bos": bos_id, "end_of_text": end_id, "version": 2}
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
        for row in pack_ids(docs, seq_len, bos_id, end_id, document_masking):
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
