"""Recognise the two BPE tokenizer families that vocabulary extension supports, and read their pieces.

* ``sentencepiece``: Llama-2-style SentencePiece BPE as Hugging Face converts it: byte fallback to the 256
  ``<0x..>`` tokens, spaces written as ``▁``. Two serialisations exist and both are accepted: the legacy
  one (normaliser ``Prepend("▁")`` + ``Replace(" ", "▁")``, no pre-tokenizer; the released Llama 2 file)
  and the newer one (a ``Metaspace`` pre-tokenizer, no normaliser).
* ``byte_level``: GPT-2 / Llama 3 byte-level BPE: every byte is one of 256 printable stand-in characters
  (``Ġ`` is a space), so there is no unknown text and no byte fallback. Many published byte-level
  vocabularies lack some of the 256 characters (SmolLM2 lacks 21): `BaseTokenizer.missing_byte_chars` lists
  them and `tokenizer extend` appends those that valid UTF-8 text can contain.

Anything else (WordPiece, Unigram, BPE without byte coverage) is refused with a `UserError`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import UserError

SENTENCEPIECE = "sentencepiece"
BYTE_LEVEL = "byte_level"
SPACE_MARK = "▁"
BYTE_TOKEN_RE = re.compile(r"^<0x([0-9A-F]{2})>$")
SUPPORTED = ("Llama-2-style SentencePiece BPE with byte fallback (legacy or Metaspace tokenizer.json) "
             "or byte-level BPE (GPT-2 / Llama 3)")


@lru_cache(maxsize=1)
def byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte ↔ printable-character table, as ``{character: byte}`` (256 entries)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def components(node: dict | None) -> list[dict]:
    """Flatten a normaliser / pre-tokenizer / decoder JSON node that may be a ``Sequence``."""
    if not node:
        return []
    if node.get("type") == "Sequence":
        children = node.get("normalizers") or node.get("pretokenizers") or node.get("decoders") or []
        return [c for child in children for c in components(child)]
    return [node]


@dataclass
class BaseTokenizer:
    """A parsed ``tokenizer.json`` whose BPE model we know how to extend."""

    path: Path
    data: dict
    family: str
    legacy_sentencepiece: bool = False

    def missing_byte_chars(self) -> list[str]:
        """Byte-level stand-in characters the vocabulary lacks, in byte order (empty for SentencePiece)."""
        if self.family != BYTE_LEVEL:
            return []
        return sorted((c for c in byte_level_alphabet() if c not in self.vocab), key=byte_level_alphabet().get)

    @property
    def model(self) -> dict:
        return self.data["model"]

    @property
    def vocab(self) -> dict[str, int]:
        return self.model["vocab"]

    def merges(self) -> list[tuple[str, str]]:
        # Old files store merges as "a b" strings, tokenizers >= 0.20 as [a, b] pairs.
        return [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in self.model["merges"]]

    def added_tokens(self) -> dict[str, int]:
        return {t["content"]: t["id"] for t in self.data.get("added_tokens") or []}

    def size(self) -> int:
        """Number of ids in use (model vocabulary and added tokens): new ids start here."""
        ids = list(self.vocab.values()) + list(self.added_tokens().values())
        return max(ids) + 1 if ids else 0

    def piece_bytes(self, piece: str) -> bytes:
        """The UTF-8 bytes a vocabulary piece stands for (``▁`` and ``Ġ`` are spaces)."""
        if self.family == BYTE_LEVEL:
            table = byte_level_alphabet()
            return bytes(table[c] for c in piece)
        match = BYTE_TOKEN_RE.match(piece)
        if match:
            return bytes([int(match.group(1), 16)])
        return piece.replace(SPACE_MARK, " ").encode("utf-8")


def partial_character_ids(data: dict) -> set[int]:
    """Ids of the tokens that stand for part of a character, in any ``tokenizer.json`` (parsed).

    Byte-level BPE (a ``ByteLevel`` pre-tokenizer or decoder): pieces whose bytes are not valid UTF-8 on
    their own (Hangul is 3 bytes, often split 2 + 1). Otherwise: the byte-fallback tokens ``<0x80>`` to
    ``<0xFF>`` (``<0x41>`` stands for a whole character, "A"). Whole-character tokens are everything else.
    """
    vocab = (data.get("model") or {}).get("vocab") or {}
    if isinstance(vocab, list):  # Unigram: [[piece, score], ...]
        vocab = {piece: i for i, (piece, _) in enumerate(vocab)}
    byte_level = any(n.get("type") == "ByteLevel" for key in ("pre_tokenizer", "decoder") for n in components(data.get(key)))
    ids = set()
    if byte_level:
        table = byte_level_alphabet()
        specials = {t["content"] for t in data.get("added_tokens") or []}
        for piece, i in vocab.items():
            if piece in specials or any(c not in table for c in piece):
                continue
            try:
                bytes(table[c] for c in piece).decode("utf-8")
            except UnicodeDecodeError:
                ids.add(i)
        return ids
    for piece, i in vocab.items():
        match = BYTE_TOKEN_RE.match(piece)
        if match and int(match.group(1), 16) >= 0x80:
            ids.add(i)
    return ids


def _refuse(path: Path, why: str) -> UserError:
    return UserError(f"{path}: {why}; supported base tokenizers: {SUPPORTED}")


def load_base_tokenizer(directory: str | Path) -> BaseTokenizer:
    """Read ``DIR/tokenizer.json`` (or a tokenizer.json path) and identify its family, or refuse it."""
    path = Path(directory)
    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        hint = " (only a SentencePiece tokenizer.model? load it once with transformers and save_pretrained to get tokenizer.json)" \
            if (path / "tokenizer.model").is_file() else ""
        raise UserError(f"{path}: no tokenizer.json{hint}; give a Hugging Face tokenizer directory")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{file}: not valid JSON ({e.msg} at line {e.lineno})") from None
    model = data.get("model") or {}
    if model.get("type") != "BPE":
        raise _refuse(file, f"model type is {model.get('type')!r}, not BPE")
    if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        raise _refuse(file, "BPE with a continuing-subword prefix or end-of-word suffix (WordPiece-style) is not supported")
    vocab = model.get("vocab") or {}
    normalizers = components(data.get("normalizer"))
    pre_tokenizers = components(data.get("pre_tokenizer"))
    if any(p.get("type") == "ByteLevel" for p in pre_tokenizers):
        return BaseTokenizer(file, data, BYTE_LEVEL)
    legacy = any(n.get("type") == "Replace" and n.get("content") == SPACE_MARK for n in normalizers)
    metaspace = any(p.get("type") == "Metaspace" and p.get("replacement", SPACE_MARK) == SPACE_MARK for p in pre_tokenizers)
    if legacy or metaspace:
        if not model.get("byte_fallback"):
            raise _refuse(file, "SentencePiece-style BPE without byte_fallback (unknown characters would become <unk>)")
        missing = [b for b in range(256) if f"<0x{b:02X}>" not in vocab]
        if missing:
            raise _refuse(file, f"byte_fallback is on but {len(missing)} of the 256 <0x..> byte tokens are missing")
        other = [p["type"] for p in pre_tokenizers if p.get("type") not in ("Metaspace", "Split", "Digits")]
        if other:
            raise _refuse(file, f"SentencePiece-style BPE with an unexpected pre-tokenizer {other}")
        return BaseTokenizer(file, data, SENTENCEPIECE, legacy_sentencepiece=legacy and not metaspace)
    raise _refuse(file, "a BPE model that is neither byte-level nor SentencePiece-style (no ▁ space marker, no ByteLevel)")
