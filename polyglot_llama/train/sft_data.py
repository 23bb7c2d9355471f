"""SFT data: conversation records → validated dialogues → (input_ids, labels) → packed rows → batches.

Record forms (JSONL/Parquet), with an optional language field (``lang``):
- ``{"messages": [{"role": "system"|"user"|"assistant", "content": str, "train"?: bool}, ...]}``
- ``{"prompt": str, "response": str, "system"?: str}``
A record may say ``"loss_turns": "last"`` (Ghost Attention data): only its last answer is learned; a message's
own ``"train": false`` does the same per message.

Packing puts several conversations into one row of at most ``seq_len`` tokens (best-fit decreasing). Each
conversation's ``position_ids`` restart at 0; with no attention mask, transformers builds a causal mask that
is block-diagonal over position runs (``masking_utils.find_packed_sequence_indices``), for eager, SDPA and
flash attention alike, so no token attends across conversations. No loss crosses them either: every
conversation starts with a label of -100 (its BOS or first prompt token), so no position learns the next
conversation's first token.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass
from typing import Iterable, Literal

import torch

from ..chat import IGNORE_INDEX, DialogError, encode_dialog, validate_dialog
from ..errors import UserError
from ..io import RejectCounter, iter_records
from ..languages import normalize_language
from ..progress import phase


@dataclass
class Conversation:
    messages: list[dict]
    lang: str
    file: str
    record: int
    """1-based record number in its file (the line number of a JSONL file without blank lines)."""


@dataclass
class EncodeStats:
    conversations: int = 0
    truncated: int = 0
    tokens: int = 0
    answer_tokens: int = 0


def record_to_messages(record: dict) -> list[dict]:
    """The messages of one record in either form, with ``loss_turns: "last"`` applied as ``train`` flags."""
    if "messages" in record:
        messages = record["messages"]
        if not isinstance(messages, list):
            raise DialogError("malformed record", "'messages' must be a list of {role, content}")
        messages = [dict(m) if isinstance(m, dict) else m for m in messages]
    elif "prompt" in record and "response" in record:
        messages = [{"role": "user", "content": record["prompt"]}, {"role": "assistant", "content": record["response"]}]
        if record.get("system"):
            messages.insert(0, {"role": "system", "content": record["system"]})
    else:
        raise DialogError("malformed record", "a record needs 'messages' or both 'prompt' and 'response'")
    loss_turns = record.get("loss_turns", "all")
    if loss_turns not in ("all", "last"):
        raise DialogError("malformed record", f"'loss_turns' is {loss_turns!r}; use 'all' or 'last'")
    validate_dialog(messages)
    if loss_turns == "last":
        answers = [m for m in messages if m["role"] == "assistant"]
        for message in answers[:-1]:
            message["train"] = False
    if not any(m.get("train", True) for m in messages if m["role"] == "assistant"):
        raise DialogError("nothing to learn", "every assistant message has 'train': false")
    return messages


def load_conversations(files: list[str], rejects: RejectCounter, lang_field: str = "lang",
                       default_lang: str = "en") -> list[Conversation]:
    """Read and validate conversations; invalid ones are counted in ``rejects`` with their reason."""
    conversations = []
    for path in files:
        for number, record in enumerate(iter_records([path], rejects, text_field=None), start=1):
            try:
                messages = record_to_messages(record)
                raw_lang = record.get(lang_field)
                lang = normalize_language(raw_lang) if raw_lang else default_lang
            except DialogError as e:
                rejects.add(path, number, e.reason, json.dumps(record, ensure_ascii=False, default=str))
                continue
            except UserError:
                rejects.add(path, number, "bad language code", json.dumps(record, ensure_ascii=False, default=str))
                continue
            conversations.append(Conversation(messages, lang, path, number))
    return conversations


def encode_conversations(conversations: Iterable[Conversation], tokenizer, seq_len: int, rejects: RejectCounter,
                         overlong: Literal["truncate", "drop"] = "truncate",
                         template: str | None = None) -> tuple[list[dict], EncodeStats]:
    """Tokenise conversations into ``{"input_ids", "labels", "lang"}`` of at most ``seq_len`` tokens.

    An over-long conversation is cut to its first ``seq_len`` tokens ("truncate") or rejected ("drop"); a
    cut that leaves no answer token is rejected either way.
    """
    examples, stats = [], EncodeStats()
    conversations = list(conversations)
    for conv in phase(conversations, desc="tokenize", unit="conv", disable=len(conversations) < 1000):
        raw = json.dumps({"messages": conv.messages, "lang": conv.lang}, ensure_ascii=False)
        input_ids, labels = encode_dialog(conv.messages, tokenizer, template)
        if len(input_ids) > seq_len:
            if overlong == "drop":
                rejects.add(conv.file, conv.record, f"longer than seq_len ({seq_len} tokens)", raw)
                continue
            input_ids, labels = input_ids[:seq_len], labels[:seq_len]
            stats.truncated += 1
        n_answer = sum(label != IGNORE_INDEX for label in labels[1:])
        if n_answer == 0:
            rejects.add(conv.file, conv.record, f"no answer token within seq_len ({seq_len} tokens)", raw)
            continue
        examples.append({"input_ids": input_ids, "labels": labels, "lang": conv.lang})
        stats.conversations += 1
        stats.tokens += len(input_ids)
        stats.answer_tokens += n_answer
    return examples, stats


def pack_examples(examples: list[dict], seq_len: int, packing: bool = True) -> list[dict]:
    """Rows of ``{"input_ids", "labels", "position_ids", "lang", "lengths"}``, each at most ``seq_len`` long.

    With ``packing``, best-fit decreasing: the longest conversation first, each into the fullest row that
    still has room. Rows mix languages only if the examples do; ``lang`` is the language of the row's
    first (longest) conversation (validation sets are packed per language, so theirs are exact).
    """
    if not packing:
        return [_make_row([ex]) for ex in examples]
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i]["input_ids"]))
    bins: list[list[dict]] = []
    free: list[tuple[int, int]] = []  # sorted (free tokens, bin index)
    for i in order:
        length = len(examples[i]["input_ids"])
        slot = bisect.bisect_left(free, (length, -1))
        if slot == len(free):
            bins.append([examples[i]])
            bisect.insort(free, (seq_len - length, len(bins) - 1))
            continue
        room, index = free.pop(slot)
        bins[index].append(examples[i])
        bisect.insort(free, (room - length, index))
    return [_make_row(group) for group in bins]


def _make_row(group: list[dict]) -> dict:
    input_ids, labels, positions, lengths = [], [], [], []
    for ex in group:
        n = len(ex["input_ids"])
        input_ids.extend(ex["input_ids"])
        # The first label of each conversation (a BOS or prompt token) is never learned, so no loss crosses
        # a boundary whatever the template starts with.
        labels.extend([IGNORE_INDEX] + list(ex["labels"][1:]))
        positions.extend(range(n))
        lengths.append(n)
    return {"input_ids": input_ids, "labels": labels, "position_ids": positions, "lang": group[0]["lang"],
            "lengths": lengths}


def make_collate(pad_id: int):
    """Collate rows of different lengths into [B, T] tensors (T = longest row).

    Padding forms one more position run (0, 1, ...) so it is its own attention block: pad tokens attend
    only to each other, never to a conversation, and no query row is fully masked (which would put NaNs
    into SDPA). Padding labels are -100.
    """

    def collate(rows: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(row["input_ids"]) for row in rows)
        batch = {key: torch.empty(len(rows), width, dtype=torch.long) for key in ("input_ids", "labels", "position_ids")}
        for b, row in enumerate(rows):
            pad = width - len(row["input_ids"])
            batch["input_ids"][b] = torch.tensor(row["input_ids"] + [pad_id] * pad)
            batch["labels"][b] = torch.tensor(row["labels"] + [IGNORE_INDEX] * pad)
            batch["position_ids"][b] = torch.tensor(row["position_ids"] + list(range(pad)))
        return batch

    return collate


def split_by_language(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in rows:
        out.setdefault(row["lang"], []).append(row)
    return dict(sorted(out.items()))
