"""`polyglot-llama tokenizer train`: a Llama-2-style tokenizer trained with the `tokenizers` library.

Llama 2's conventions (paper §2.2 and its released tokenizer.json): BPE with byte fallback (unknown UTF-8
becomes ``<0x..>`` byte tokens), spaces become ``▁`` and one ``▁`` is prepended to the text, digits
are split into single characters, ids 0/1/2 are ``<unk>``/``<s>``/``</s>``, then the 256 byte tokens.
The saved directory loads with `transformers.AutoTokenizer` and gives the same ids as
`tokenizers.Tokenizer.from_file` (see `save_tokenizer_dir`).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from ..chat import LLAMA2_CHAT_TEMPLATE
from ..config import write_resolved_config
from ..errors import UserError
from ..io import RejectCounter, atomic_path, expand_inputs, iter_records, write_json

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>"]
BYTE_TOKENS = [f"<0x{b:02X}>" for b in range(256)]


@dataclass
class TokenizerTrainConfig:
    input: list[str] = field(default_factory=list)
    """Training text: globs of JSONL (``text`` field), Parquet or plain-text files."""
    output: str = ""
    """Directory to write tokenizer.json and tokenizer_config.json."""
    vocab_size: int = 32000
    """Final vocabulary size, counting the 3 special and 256 byte tokens (Llama 2: 32000)."""
    text_field: str = "text"
    """Name of the text field in JSONL/Parquet records."""
    min_frequency: int = 2
    """A merge is learnt only for pairs seen at least this often."""
    limit_alphabet: int = 1000
    """At most this many initial characters; rarer characters fall back to byte tokens."""
    model_max_length: int = 4096
    """Maximum sequence length recorded in tokenizer_config.json (Llama 2: 4096)."""

    def __post_init__(self):
        if not self.input:
            raise UserError("key 'input' is required: the training text (JSONL, Parquet or plain text)")
        if not self.output:
            raise UserError("key 'output' is required: the tokenizer directory to write")
        if self.vocab_size <= len(SPECIAL_TOKENS) + len(BYTE_TOKENS):
            raise UserError(f"key 'vocab_size' is {self.vocab_size}; it must exceed {len(SPECIAL_TOKENS) + len(BYTE_TOKENS)} (special + byte tokens)")


def llama_normalizer() -> normalizers.Normalizer:
    # SentencePiece's add_dummy_prefix + whitespace escaping, exactly as Llama 2's tokenizer.json does it:
    # every space becomes "▁" and one "▁" is prepended, so decode can strip exactly one leading space.
    return normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])


def llama_pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    # Pieces never cross a word boundary ("▁" starts a word) and numbers split into single digits
    # (Llama 2's split_digits).
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split("▁", behavior="merged_with_next"),
        pre_tokenizers.Digits(individual_digits=True),
    ])


def llama_decoder() -> decoders.Decoder:
    return decoders.Sequence([
        decoders.Replace("▁", " "),
        decoders.ByteFallback(),
        decoders.Fuse(),
        decoders.Strip(" ", 1, 0),
    ])


def llama_post_processor(bos_id: int) -> processors.PostProcessor:
    # Llama 2 adds <s> at the start and no </s> at the end.
    return processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos_id)])


def build_llama_tokenizer(vocab: dict[str, int], merges: list[tuple[str, str]]) -> Tokenizer:
    """A Llama-2-style tokenizer from a vocabulary and merges (ids 0-2 special, 3-258 bytes)."""
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tokenizer.normalizer = llama_normalizer()
    tokenizer.pre_tokenizer = llama_pre_tokenizer()
    tokenizer.decoder = llama_decoder()
    tokenizer.post_processor = llama_post_processor(vocab["<s>"])
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    return tokenizer


# The generic fast class: it takes tokenizer.json as it is. Naming LlamaTokenizerFast instead makes
# transformers 5 rebuild the pre-tokenizer and drop the normaliser of a legacy Llama-2 tokenizer.json.
AUTO_TOKENIZER_CLASS = "PreTrainedTokenizerFast"


def llama_tokenizer_config(model_max_length: int = 4096) -> dict:
    """The ``tokenizer_config.json`` of a Llama-2-style tokenizer directory."""
    return {
        "tokenizer_class": AUTO_TOKENIZER_CLASS,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": model_max_length,
    }


def save_tokenizer_dir(tokenizer: Tokenizer, output: str | Path, model_max_length: int = 4096,
                       chat_template: str | None = None, extra_config: dict | None = None) -> Path:
    """Write ``tokenizer.json`` + ``tokenizer_config.json`` so AutoTokenizer reproduces the raw ids.

    The config names the generic ``PreTrainedTokenizerFast`` class, not ``LlamaTokenizerFast``: in
    transformers 5 the Llama class rebuilds the pre-tokenizer and drops the normaliser of a legacy Llama-2
    tokenizer.json, which changes the ids of any text starting with a space.
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    with atomic_path(output / "tokenizer.json") as tmp:
        tokenizer.save(str(tmp))
    config = {**llama_tokenizer_config(model_max_length), **(extra_config or {})}
    if chat_template is not None:
        config["chat_template"] = chat_template
    write_json(output / "tokenizer_config.json", config)
    return output


def iter_texts(files: list[str], text_field: str, rejects: RejectCounter) -> Iterator[str]:
    for record in iter_records(files, rejects, text_field=text_field):
        text = record[text_field]
        if text.strip():
            yield text


def deterministic_alphabet_limit(texts: Sequence[str], limit_alphabet: int) -> int:
    """The largest alphabet size <= ``limit_alphabet`` whose cut-off falls between two character counts.

    The `tokenizers` trainer keeps the ``limit_alphabet`` most frequent characters, but breaks ties among
    equally frequent ones in hash order, which differs from process to process: the same corpus then gives
    different tokenizers. Cutting below a tie (keeping only characters strictly more frequent than the first
    dropped one) makes training reproducible. Counts are over the normalised text, as the trainer sees it.
    """
    counts = Counter()
    for text in texts:
        counts.update("▁" + text.replace(" ", "▁"))
    ordered = sorted(counts.values(), reverse=True)
    if len(ordered) <= limit_alphabet:
        return limit_alphabet
    boundary = ordered[limit_alphabet]  # count of the most frequent character that would be dropped
    return sum(1 for c in ordered if c > boundary)


def train_llama_tokenizer(texts: Sequence[str], vocab_size: int, min_frequency: int = 2, limit_alphabet: int = 1000) -> Tokenizer:
    """Learn BPE merges on ``texts`` (a sequence: read twice) and lay the vocabulary out the Llama 2 way."""
    texts = list(texts)
    scratch = Tokenizer(models.BPE(unk_token="<unk>"))
    scratch.normalizer = llama_normalizer()
    scratch.pre_tokenizer = llama_pre_tokenizer()
    reserved = len(SPECIAL_TOKENS) + len(BYTE_TOKENS)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - reserved, min_frequency=min_frequency,
        limit_alphabet=deterministic_alphabet_limit(texts, limit_alphabet), special_tokens=[], show_progress=False,
    )
    scratch.train_from_iterator(texts, trainer=trainer)
    learnt = json.loads(scratch.to_str())["model"]
    pieces = sorted(learnt["vocab"].items(), key=lambda kv: kv[1])
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + BYTE_TOKENS)}
    for piece, _ in pieces:
        vocab.setdefault(piece, len(vocab))
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in learnt["merges"]]
    return build_llama_tokenizer(vocab, merges)


def run(cfg: TokenizerTrainConfig) -> dict:
    rejects = RejectCounter()
    files = expand_inputs(cfg.input)
    tokenizer = train_llama_tokenizer(iter_texts(files, cfg.text_field, rejects), cfg.vocab_size,
                                      cfg.min_frequency, cfg.limit_alphabet)
    if tokenizer.get_vocab_size() <= len(SPECIAL_TOKENS) + len(BYTE_TOKENS):
        raise UserError(f"{cfg.input}: no usable text to train on ({rejects.count} records rejected: {rejects.by_reason()})")
    # The Llama 2 chat format is the template of a tokenizer this toolkit trains (SFT and later stages use it).
    save_tokenizer_dir(tokenizer, cfg.output, cfg.model_max_length, chat_template=LLAMA2_CHAT_TEMPLATE)
    write_resolved_config(cfg, cfg.output, "tokenizer train")
    return {"output": cfg.output, "vocab_size": tokenizer.get_vocab_size(), "rejected_records": rejects.by_reason()}
