"""DPO data: preference pairs (the `reward` stage's JSONL, read by `reward_data`) → scored token rows,
length-sorted micro-batches and the cached reference log-probabilities.

Each pair becomes two conversations, prompt + chosen and prompt + rejected, rendered by
`polyglot_llama.chat.encode_dialog` (the model's chat template). Only the final answer is scored: earlier
assistant turns of a multi-turn prompt are marked ``"train": false``, so their labels are -100.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import torch

from ..io import RejectCounter
from ..model.reward_model import pad_sequences
from .losses import IGNORE_INDEX, REWARD_MARGINS, sequence_logprobs
from .reward_data import PreferencePair

REFERENCE_CACHE = "reference_logps.safetensors"


def _messages(pair: PreferencePair, answer: str) -> list[dict]:
    context = [dict(m, train=False) if m.get("role") == "assistant" else m for m in pair.prompt]
    return context + [{"role": "assistant", "content": answer}]


def encode_pairs(pairs: list[PreferencePair], tokenizer, template: str | None, max_length: int, offset_table: str,
                 rejects: RejectCounter) -> list[dict]:
    """Examples ``{chosen_ids, chosen_labels, rejected_ids, rejected_labels, offset, lang, strength, is_safety}``.

    ``offset`` is the Llama 2 margin m(strength) of ``offset_table`` (unscaled). A pair that cannot be
    rendered, or whose longer conversation exceeds ``max_length`` tokens, is counted in ``rejects``:
    truncating would cut the answer whose probability is the whole signal.
    """
    from ..chat import DialogError, encode_dialog

    margins = REWARD_MARGINS[offset_table]
    examples = []
    for pair in pairs:
        try:
            chosen_ids, chosen_labels = encode_dialog(_messages(pair, pair.chosen), tokenizer, template)
            rejected_ids, rejected_labels = encode_dialog(_messages(pair, pair.rejected), tokenizer, template)
        except DialogError as e:
            rejects.add(pair.file, pair.record, e.reason, json.dumps(pair.prompt, ensure_ascii=False))
            continue
        longest = max(len(chosen_ids), len(rejected_ids))
        if longest > max_length:
            rejects.add(pair.file, pair.record, f"prompt + response longer than max_length {max_length}",
                        f"longest prompt + response {longest} tokens")
            continue
        examples.append({
            "chosen_ids": list(chosen_ids), "chosen_labels": list(chosen_labels),
            "rejected_ids": list(rejected_ids), "rejected_labels": list(rejected_labels),
            "offset": margins[pair.strength] if pair.strength else 0.0,
            "lang": pair.lang, "strength": pair.strength or "unlabelled", "is_safety": pair.is_safety,
        })
    return examples


def _length(example: dict) -> int:
    return max(len(example["chosen_ids"]), len(example["rejected_ids"]))


def length_grouped_batches(examples: list[dict], pairs_per_batch: int, seed: int, window: int = 50) -> list[list[dict]]:
    """Micro-batches of ``pairs_per_batch`` pairs of similar length (less padding), in a seeded order.

    The examples are shuffled, cut into windows of ``window`` micro-batches, sorted by length inside each
    window and split into micro-batches; the loop then shuffles the micro-batches each epoch. The last
    micro-batch may be smaller. The grouping is a pure function of (examples, seed): resume-exact.
    """
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    span = pairs_per_batch * window
    batches = []
    for start in range(0, len(order), span):
        chunk = sorted(order[start:start + span], key=lambda i: _length(examples[i]))
        batches += [[examples[i] for i in chunk[k:k + pairs_per_batch]] for k in range(0, len(chunk), pairs_per_batch)]
    return batches


def collate(groups: list[list[dict]], pad_id: int) -> dict:
    """Micro-batch groups (the loop hands over a list of them) → one forward of 2B rows, chosen rows first:
    input_ids / attention_mask / labels [2B, T] (right padding, labels -100 off the answer), offset [B],
    and ref_chosen / ref_rejected [B] (summed reference log-probs) once they are cached."""
    examples = [e for group in groups for e in group]
    input_ids, attention_mask = pad_sequences([e["chosen_ids"] for e in examples] + [e["rejected_ids"] for e in examples], pad_id)
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    for row, e in enumerate(examples):
        labels[row, :len(e["chosen_labels"])] = torch.tensor(e["chosen_labels"])
        labels[row + len(examples), :len(e["rejected_labels"])] = torch.tensor(e["rejected_labels"])
    batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
             "offset": torch.tensor([e["offset"] for e in examples], dtype=torch.float32)}
    if "ref_chosen" in examples[0]:
        batch["ref_chosen"] = torch.tensor([e["ref_chosen"] for e in examples], dtype=torch.float32)
        batch["ref_rejected"] = torch.tensor([e["ref_rejected"] for e in examples], dtype=torch.float32)
    return batch


@torch.no_grad()
def answer_logprobs(model, examples: list[dict], pad_id: int, batch_size: int, autocast,
                    progress: str = "") -> tuple[list[float], list[float]]:
    """Summed log-probs of the chosen and rejected answers of each example under ``model`` (in order).

    Batches are formed in length order to waste little compute on padding; ``progress`` names a progress bar.
    """
    from ..progress import phase

    device = next(model.parameters()).device
    chosen, rejected = [0.0] * len(examples), [0.0] * len(examples)
    order = sorted(range(len(examples)), key=lambda i: _length(examples[i]))
    for start in phase(range(0, len(order), batch_size), desc=progress, disable=not progress, unit="batch"):
        index = order[start:start + batch_size]
        batch = collate([[examples[i] for i in index]], pad_id)
        with autocast():
            logits = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
                           use_cache=False).logits
        sums, _ = sequence_logprobs(logits, batch["labels"].to(device))
        c, r = sums.cpu().chunk(2)
        for i, vc, vr in zip(index, c.tolist(), r.tolist()):
            chosen[i], rejected[i] = vc, vr
    return chosen, rejected


def fingerprint(examples: list[dict], reference: str) -> str:
    """What the cached reference log-probs depend on: every scored row and the reference weights' identity
    (path, file sizes and modification times)."""
    digest = hashlib.sha256(str(Path(reference).resolve()).encode())
    for weights in sorted(Path(reference).glob("*.safetensors")):
        stat = weights.stat()
        digest.update(f"{weights.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    for e in examples:
        for key in ("chosen_ids", "chosen_labels", "rejected_ids", "rejected_labels"):
            digest.update(json.dumps(e[key]).encode())
    return digest.hexdigest()


def read_reference_cache(path: Path, expected: str, n: int) -> tuple[list[float], list[float]] | None:
    """The cached (chosen, rejected) log-probs if ``path`` holds them for this fingerprint, else None."""
    from safetensors import safe_open

    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as f:
        if (f.metadata() or {}).get("fingerprint") != expected:
            return None
        chosen, rejected = f.get_tensor("chosen"), f.get_tensor("rejected")
    if chosen.numel() != n:
        return None
    return chosen.tolist(), rejected.tolist()


def write_reference_cache(path: Path, key: str, chosen: list[float], rejected: list[float]) -> None:
    from safetensors.torch import save_file

    from ..io import atomic_path

    with atomic_path(path) as tmp:
        save_file({"chosen": torch.tensor(chosen, dtype=torch.float64), "rejected": torch.tensor(rejected, dtype=torch.float64)},
                  str(tmp), metadata={"fingerprint": key})
