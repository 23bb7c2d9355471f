"""Append new pieces and merges to a BPE model so that old behaviour is kept exactly.

Why appending is safe: Hugging Face BPE applies, inside each pre-tokenized word, the lowest-ranked merge
available until none applies. New merges are ranked after every old one, so on any word all old merges fire
first, exactly as before; a new merge can fire only where its two operands end up adjacent in the old
segmentation, and old merges never take a new token as an operand. Hence:

* old ids and strings are untouched and new ids follow the old vocabulary (added tokens included);
* text whose old segmentation contains no new-merge pair keeps its ids. With ``allow_ascii=False`` every new
  piece contains a non-ASCII character, so pure-ASCII text (English, code, numbers) provably keeps its ids;
* a new piece is kept only if the extended model reaches it from its characters, checked here by simulating
  BPE and again afterwards with the real `tokenizers` engine (`unreachable_pieces`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from tokenizers import Tokenizer

from .families import SENTENCEPIECE, BaseTokenizer, byte_level_alphabet

# Bytes that never occur in valid UTF-8 (overlong leads 0xC0/0xC1, leads of code points above U+10FFFF).
NEVER_IN_UTF8 = frozenset([0xC0, 0xC1, *range(0xF5, 0x100)])


def bpe_segment(word: str, vocab: dict[str, int], ranks: dict[tuple[str, str], int]) -> list[str | None]:
    """Segment one pre-tokenized word as Hugging Face BPE does: lowest rank first, leftmost on ties.

    Characters missing from ``vocab`` come back as ``None`` (byte fallback: never a merge operand).
    Pieces are short (a few characters), so the quadratic scan costs microseconds.
    """
    symbols: list[str | None] = [c if c in vocab else None for c in word]
    while len(symbols) > 1:
        best_rank, best_i = None, -1
        for i in range(len(symbols) - 1):
            a, b = symbols[i], symbols[i + 1]
            if a is None or b is None:
                continue
            rank = ranks.get((a, b))
            if rank is not None and (best_rank is None or rank < best_rank):
                best_rank, best_i = rank, i
        if best_rank is None:
            break
        symbols[best_i:best_i + 2] = [symbols[best_i] + symbols[best_i + 1]]
    return symbols


@dataclass
class Extension:
    """What `plan_extension` decided: new pieces in id order and the merges that produce them."""

    first_id: int
    pieces: list[str] = field(default_factory=list)
    merges: list[tuple[str, str]] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    byte_chars_added: list[str] = field(default_factory=list)
    """Byte-level stand-ins the base lacked, appended first (they do not count against the budget)."""
    byte_chars_left_out: list[str] = field(default_factory=list)
    """Missing byte-level stand-ins of bytes that valid UTF-8 never contains (no text needs them)."""

    @property
    def ids(self) -> list[int]:
        return list(range(self.first_id, self.first_id + len(self.pieces)))


def merge_application_counts(learnt_merges: list[tuple[str, str]], usage: Counter) -> dict[str, int]:
    """How often each learnt merge fires when encoding a corpus, from the final token ``usage`` there.

    A merge fires once for every final token built from its piece: the piece's own uses plus those of
    every later piece that contains it. Walking the merges backwards pushes each piece's count down to its
    two parts. This is the pair frequency the trainer saw, i.e. the tokens the merge saves.
    """
    fired = Counter({left + right: usage.get(left + right, 0) for left, right in learnt_merges})
    for left, right in reversed(learnt_merges):
        count = fired[left + right]
        fired[left] += count
        fired[right] += count
    return fired


def plan_extension(base: BaseTokenizer, learnt_merges: list[tuple[str, str]], char_counts: Counter,
                   budget: int, allow_ascii: bool = False, min_frequency: int = 2,
                   merge_counts: dict[str, int] | None = None) -> Extension:
    """Choose up to ``budget`` new pieces from merges learnt on target text (in learnt order).

    A learnt merge ``(l, r)`` proposes the piece ``l + r``. Characters it needs that the base lacks (byte
    fallback today) are added first, as plain vocabulary entries, and count against the budget. The piece is
    added with the merge of the two parts the *extended* model actually splits it into, which may differ
    from ``(l, r)`` because old merges fire first.

    Missing characters also compete on their own: one saves ``count x (UTF-8 bytes - 1)`` tokens (its byte
    tokens become one), a merge saves its ``merge_counts`` (how often it fires). Before each merge, every
    missing character worth more is added, so a script with thousands of characters (Japanese, Chinese)
    gets its frequent characters before rare merges. Budget left at the end goes to the most valuable
    characters still missing (seen at least ``min_frequency`` times).
    """
    vocab = dict(base.vocab)
    reserved = set(base.added_tokens())
    ranks = {pair: i for i, pair in enumerate(base.merges())}
    ext = Extension(first_id=base.size())

    def wanted(piece: str) -> bool:
        return allow_ascii or any(b >= 0x80 for b in base.piece_bytes(piece))

    def add(piece: str, merge: tuple[str, str] | None) -> None:
        vocab[piece] = ext.first_id + len(ext.pieces)
        ext.pieces.append(piece)
        if merge is not None:
            ranks[merge] = len(ranks)
            ext.merges.append(merge)

    # A byte-level base that lacks byte characters would silently drop text holding those bytes (control
    # characters such as 0x04 are valid UTF-8): append them first, so every text round-trips.
    table = byte_level_alphabet()
    for char in base.missing_byte_chars():
        if table[char] in NEVER_IN_UTF8:
            ext.byte_chars_left_out.append(char)
        else:
            add(char, None)
            ext.byte_chars_added.append(char)
    budget += len(ext.byte_chars_added)

    # Only SentencePiece-style models have characters outside the vocabulary (byte fallback).
    chars = [] if base.family != SENTENCEPIECE else sorted(
        ((n * (len(c.encode("utf-8")) - 1), c) for c, n in char_counts.items()
         if n >= min_frequency and c not in vocab and c not in reserved and wanted(c)), reverse=True)
    next_char = 0

    def add_chars_worth(at_least: float) -> None:
        nonlocal next_char
        while next_char < len(chars) and chars[next_char][0] >= at_least and len(ext.pieces) < budget:
            char = chars[next_char][1]
            if char not in vocab:
                add(char, None)
            next_char += 1

    for left, right in learnt_merges:
        piece = left + right
        if merge_counts is not None:
            add_chars_worth(merge_counts.get(piece, 0))
        if len(ext.pieces) >= budget:
            break
        if piece in vocab or piece in reserved:
            continue
        if not wanted(piece):
            ext.skipped["ascii-only"] += 1
            continue
        missing = list(dict.fromkeys(c for c in piece if c not in vocab)) if base.family == SENTENCEPIECE else []
        if any(not wanted(c) or c in reserved for c in missing):
            ext.skipped["needs an ASCII or reserved character"] += 1
            continue
        if len(ext.pieces) + len(missing) + 1 > budget:
            ext.skipped["over budget"] += 1
            continue
        vocab.update((c, -1) for c in missing)  # on trial: kept only if the piece becomes reachable
        parts = bpe_segment(piece, vocab, ranks)
        for c in missing:
            del vocab[c]
        if len(parts) != 2 or None in parts:
            ext.skipped["unreachable (a part was not added)"] += 1
            continue
        for c in missing:
            add(c, None)
        add(piece, (parts[0], parts[1]))
    add_chars_worth(0)
    return ext


def apply_extension(base: BaseTokenizer, ext: Extension) -> dict:
    """A new tokenizer.json dict: the base's, with the new pieces and merges appended (nothing else changes)."""
    model = {**base.model, "vocab": dict(base.vocab), "merges": list(base.model["merges"])}
    data = {**base.data, "model": model}  # only vocab and merges change: shallow copies suffice
    # `tokenizers` ignores the ids stored for added tokens that the model vocabulary lacks and renumbers
    # them from the model's size (Llama 3's specials sit after its 128,000 pieces). Once new pieces follow
    # them, that renumbering would collide; listing the added tokens in the model vocabulary pins their ids.
    for content, id_ in base.added_tokens().items():
        model["vocab"].setdefault(content, id_)
    model["vocab"].update({piece: i for piece, i in zip(ext.pieces, ext.ids)})
    as_strings = bool(model["merges"]) and isinstance(model["merges"][0], str)
    model["merges"].extend(f"{a} {b}" if as_strings else [a, b] for a, b in ext.merges)
    return data


def unreachable_pieces(tokenizer: Tokenizer, pieces: list[str]) -> list[str]:
    """New pieces that the real BPE engine does not produce from their own characters (should be none)."""
    return [p for p in pieces if [t.value for t in tokenizer.model.tokenize(p)] != [p]]

