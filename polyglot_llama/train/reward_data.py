"""Preference pairs for reward-model training: reading, validation, per-RM mixtures and tokenisation.

Accepted record forms (JSONL or Parquet, one pair per record):

* explicit prompt: ``{"prompt": str | [messages], "chosen": str, "rejected": str}``; ``chosen``/``rejected``
  may also be a one-message list ``[{"role": "assistant", "content": ...}]`` (TRL's conversational form);
* full transcripts: ``{"chosen": [messages], "rejected": [messages]}`` whose turns agree up to the final
  assistant answer (the shared turns are the prompt), or Anthropic-HH strings
  ``"\\n\\nHuman: ...\\n\\nAssistant: ..."``.

Optional keys: ``strength`` (significantly_better, better, slightly_better, negligibly_better; "unsure"
counts as negligibly_better), ``lang``, ``is_safety`` and ``safety_label`` (both_safe, chosen_only_safe,
both_unsafe: the paper's three safety bins). A pair that cannot be used (missing field, identical
responses, a prompt longer than the maximum length, ...) is skipped, counted and written with its reason;
an unknown label is an error, since it means the whole file follows another labelling scheme.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from ..errors import UserError
from ..io import RejectCounter, expand_inputs, iter_records
from ..languages import normalize_language
from ..model.reward_model import as_messages, encode_conversation, pad_sequences
from .losses import REWARD_MARGINS

STRENGTH_LABELS = tuple(REWARD_MARGINS["large"])  # strongest first
STRENGTH_ALIASES = {"unsure": "negligibly_better", "negligibly_better_or_unsure": "negligibly_better",
                    "negligibly_better_unsure": "negligibly_better"}
SAFETY_LABELS = ("both_safe", "chosen_only_safe", "both_unsafe")
UNKNOWN_LANG = "und"


@dataclass
class PreferencePair:
    prompt: list[dict]
    """Chat messages ending with the user turn both responses answer."""
    chosen: str
    rejected: str
    strength: str | None = None
    lang: str = UNKNOWN_LANG
    is_safety: bool = False
    safety_label: str | None = None
    source: str = ""
    """Name of the mixture source the pair came from."""
    file: str = ""
    record: int = 0
    """Position of the pair in ``file`` (1-based), for reject reports."""


class PairRejected(Exception):
    """A record that is skipped and counted; ``reason`` is its short category."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _canonical(label: str) -> str:
    return re.sub(r"[\s\-/]+", "_", label.strip().lower()).strip("_")


def normalize_strength(value, where: str) -> str | None:
    """Canonical strength label, None when absent; an unknown label is a `UserError` naming the allowed ones."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    label = _canonical(str(value))
    label = STRENGTH_ALIASES.get(label, label)
    if label not in STRENGTH_LABELS:
        raise UserError(f"{where}: unknown strength label {value!r}; allowed: {', '.join(STRENGTH_LABELS)} "
                        "(or 'unsure'); fix the label or drop the key")
    return label


def normalize_safety_label(value, where: str) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    label = _canonical(str(value))
    if label not in SAFETY_LABELS:
        raise UserError(f"{where}: unknown safety_label {value!r}; allowed: {', '.join(SAFETY_LABELS)}")
    return label


_HH_TURN = re.compile(r"\n\n(Human|Assistant):[ ]?")


def _hh_messages(text: str) -> list[dict]:
    """Anthropic-HH transcript string → messages (no markers → [])."""
    parts = _HH_TURN.split("\n\n" + text.lstrip("\n"))  # [before, role, text, role, text, ...]
    roles = {"Human": "user", "Assistant": "assistant"}
    return [{"role": roles[parts[i]], "content": parts[i + 1].strip()} for i in range(1, len(parts) - 1, 2)]


def _transcript(value, key: str) -> list[dict]:
    messages = _hh_messages(value) if isinstance(value, str) else value
    if not isinstance(messages, list) or not messages:
        raise PairRejected(f"no prompt: '{key}' is not a transcript and 'prompt' is missing")
    if not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
        raise PairRejected(f"malformed messages in '{key}'")
    if messages[-1].get("role") != "assistant" or len(messages) < 2:
        raise PairRejected(f"'{key}' transcript does not end with an assistant answer")
    return messages


def _turn_keys(messages: list[dict]) -> list[tuple]:
    return [(m.get("role"), m["content"].strip()) for m in messages]


def _response(value, key: str) -> str:
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict) and value[0].get("role") == "assistant":
        value = value[0].get("content")
    if not isinstance(value, str):
        raise PairRejected(f"missing or non-string '{key}'")
    return value


def parse_pair(record: dict, where: str, default_lang: str = UNKNOWN_LANG, default_is_safety: bool = False) -> PreferencePair:
    """One record → `PreferencePair`; raises `PairRejected` (skip and count) or `UserError` (bad label)."""
    if "chosen" not in record or "rejected" not in record:
        missing = "chosen" if "chosen" not in record else "rejected"
        raise PairRejected(f"missing field '{missing}'")
    if record.get("prompt") is not None:
        try:
            prompt = as_messages(record["prompt"], where)
        except UserError:
            raise PairRejected("malformed prompt") from None
        chosen, rejected = _response(record["chosen"], "chosen"), _response(record["rejected"], "rejected")
    else:
        chosen_turns, rejected_turns = _transcript(record["chosen"], "chosen"), _transcript(record["rejected"], "rejected")
        if _turn_keys(chosen_turns[:-1]) != _turn_keys(rejected_turns[:-1]):
            raise PairRejected("chosen and rejected transcripts differ before the final answer")
        try:
            prompt = as_messages(chosen_turns[:-1], where)
        except UserError:
            raise PairRejected("malformed prompt") from None
        chosen, rejected = chosen_turns[-1]["content"], rejected_turns[-1]["content"]
    if not chosen.strip() or not rejected.strip():
        raise PairRejected("empty response")
    if chosen.strip() == rejected.strip():
        raise PairRejected("identical chosen and rejected")
    safety_label = normalize_safety_label(record.get("safety_label"), where)
    is_safety = record.get("is_safety")
    if not isinstance(is_safety, bool):
        is_safety = default_is_safety or safety_label is not None
    lang = record.get("lang") or default_lang
    try:
        lang = normalize_language(lang)
    except UserError:
        raise PairRejected("bad language code") from None
    return PreferencePair(prompt=prompt, chosen=chosen, rejected=rejected,
                          strength=normalize_strength(record.get("strength"), where), lang=lang,
                          is_safety=is_safety, safety_label=safety_label)


def load_pairs(globs: list[str], rejects: RejectCounter, source: str = "", default_lang: str = UNKNOWN_LANG,
               default_is_safety: bool = False) -> list[PreferencePair]:
    """Read every pair of the files matching ``globs``; unusable records go to ``rejects``."""
    pairs: list[PreferencePair] = []
    for path in expand_inputs(globs):
        for number, record in enumerate(iter_records([path], rejects, text_field=None), start=1):
            where = f"{path}: record {number}"
            try:
                pair = parse_pair(record, where, default_lang, default_is_safety)
            except PairRejected as e:
                rejects.add(path, number, e.reason, json.dumps(record, ensure_ascii=False, default=str))
                continue
            pair.source, pair.file, pair.record = source, path, number
            pairs.append(pair)
    return pairs


@dataclass
class PairDataConfig:
    """The data section the `reward` and `dpo` stages share: preference-pair files and the held-out split."""

    train: list[str] = field(default_factory=list)
    """Preference pairs (JSONL/Parquet globs): prompt, chosen, rejected, optional lang, strength, safety tags."""
    validation: list[str] = field(default_factory=list)
    """Held-out pairs for per-language accuracy; empty: hold out validation_fraction of each language."""
    validation_fraction: float = 0.05
    """Share of each language's pairs held out when no validation files are given."""
    default_lang: str = UNKNOWN_LANG
    """Language of pairs without a lang key."""
    max_length: int = 0
    """Longest prompt + response in tokens; longer pairs are skipped and counted (0 = the model's context)."""

    def __post_init__(self):
        if not self.train:
            raise UserError("key 'data.train' is required: globs of preference-pair files (prompt/chosen/rejected)")
        if not 0 <= self.validation_fraction < 1:
            raise UserError(f"key 'data.validation_fraction' is {self.validation_fraction}; it must be in [0, 1)")
        if self.max_length < 0:
            raise UserError(f"key 'data.max_length' is {self.max_length}; give a token count or 0 for the model's context")


# ------------------------------------------------------------------------------------------- mixtures


@dataclass
class MixSource:
    files: list[str] = field(default_factory=list)
    """Globs of preference-pair files (JSONL/Parquet)."""
    share: float = 0.1
    """Fraction of the final training mixture drawn from these files (safety RM: helpfulness data 0.1)."""
    name: str = ""
    """Label in the summary (default: the first glob)."""
    is_safety: bool = False
    """Tag pairs without an is_safety key as safety pairs."""

    def __post_init__(self):
        if not self.files:
            raise UserError("key 'data.mix[].files' is required: the pair files of this mixture source")
        if not 0 < self.share < 1:
            raise UserError(f"key 'data.mix[].share' is {self.share}; give a fraction of the mixture in (0, 1)")
        self.name = self.name or self.files[0]


def mix_pairs(primary: list[PreferencePair], extra: list[tuple[MixSource, list[PreferencePair]]],
              seed: int) -> tuple[list[PreferencePair], dict[str, dict]]:
    """All primary pairs plus, from each extra source, ``share`` of the final mixture sampled without
    replacement; a source with too few pairs gives all it has (reported, never repeated: an RM overfits
    on repeated pairs). Returns the shuffled mixture and {source: {"available", "used", "share"}}.

    With primary P and shares s_i, the mixture has N = P / (1 − Σ s_i) pairs and source i gives s_i·N.
    """
    total_share = sum(source.share for source, _ in extra)
    if total_share >= 1:
        raise UserError(f"keys 'data.mix[].share' sum to {total_share}; the primary data needs a share too (sum < 1)")
    target = len(primary) / (1 - total_share)
    rng = random.Random(seed)
    mixture = list(primary)
    summary = {"primary": {"available": len(primary), "used": len(primary)}}
    for source, pairs in extra:
        wanted = round(source.share * target)
        used = rng.sample(pairs, min(wanted, len(pairs)))
        mixture.extend(used)
        summary[source.name] = {"available": len(pairs), "wanted": wanted, "used": len(used)}
    for entry in summary.values():
        entry["share"] = entry["used"] / max(len(mixture), 1)
    rng.shuffle(mixture)
    return mixture, summary


def split_validation(pairs: list[PreferencePair], fraction: float, seed: int) -> tuple[list, list]:
    """Hold out ``fraction`` of each language's pairs (at least one where a language has two or more)."""
    by_lang: dict[str, list[PreferencePair]] = defaultdict(list)
    for pair in pairs:
        by_lang[pair.lang].append(pair)
    rng = random.Random(seed)
    train, validation = [], []
    for lang in sorted(by_lang):
        group = by_lang[lang][:]
        rng.shuffle(group)
        n_val = max(1, round(fraction * len(group))) if len(group) >= 2 and fraction > 0 else 0
        validation += group[:n_val]
        train += group[n_val:]
    rng.shuffle(train)
    return train, validation


# ----------------------------------------------------------------------------------------- tokenisation


def encode_pairs(pairs: list[PreferencePair], tokenizer, max_length: int, margin_table: str,
                 rejects: RejectCounter, progress: bool = False) -> list[dict]:
    """Tokenised examples ``{"chosen_ids", "rejected_ids", "margin", "lang", "strength", "is_safety"}``.

    A pair whose prompt + response exceeds ``max_length`` tokens is rejected, with the reason saying whether
    the prompt alone is too long (truncating would cut the response end, where the reward is read, or the
    question the response answers).
    """
    from ..chat import DialogError, encode_prompt

    margins = REWARD_MARGINS[margin_table]
    examples = []
    iterator = pairs
    if progress:
        from ..progress import phase

        iterator = phase(pairs, desc="tokenize pairs", unit="pair")
    for pair in iterator:
        try:
            chosen_ids = encode_conversation(pair.prompt, pair.chosen, tokenizer)
            rejected_ids = encode_conversation(pair.prompt, pair.rejected, tokenizer)
        except DialogError as e:
            rejects.add(pair.file, pair.record, e.reason, str(pair.prompt))
            continue
        longest = max(len(chosen_ids), len(rejected_ids))
        if longest > max_length:
            prompt_length = len(encode_prompt(pair.prompt, tokenizer))
            part = "prompt" if prompt_length >= max_length else "prompt + response"
            rejects.add(pair.file, pair.record, f"{part} longer than max_length {max_length}",
                        f"prompt {prompt_length} tokens, longest prompt + response {longest} tokens")
            continue
        examples.append({
            "chosen_ids": chosen_ids, "rejected_ids": rejected_ids,
            "margin": margins[pair.strength] if pair.strength else 0.0,
            "lang": pair.lang, "strength": pair.strength or "unlabelled", "is_safety": pair.is_safety,
        })
    return examples


def collate_pairs(examples: list[dict], pad_id: int) -> dict:
    """B pairs → one batch of 2B rows (chosen rows 0..B-1, rejected rows B..2B-1) for a single forward pass:
    input_ids / attention_mask [2B, T] (right padding), margin [B]."""
    import torch

    rows = [e["chosen_ids"] for e in examples] + [e["rejected_ids"] for e in examples]
    input_ids, attention_mask = pad_sequences(rows, pad_id)
    return {"input_ids": input_ids, "attention_mask": attention_mask,
            "margin": torch.tensor([e["margin"] for e in examples], dtype=torch.float32)}


def describe(examples: list[dict]) -> dict:
    """Counts per language, strength and safety tag, for the run summary."""
    return {
        "pairs": len(examples),
        "languages": dict(Counter(e["lang"] for e in examples).most_common()),
        "strength": dict(Counter(e["strength"] for e in examples).most_common()),
        "safety_pairs": sum(e["is_safety"] for e in examples),
    }
