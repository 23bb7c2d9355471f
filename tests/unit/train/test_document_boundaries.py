"""Pretraining documents end with the model's end-of-text token; a BOS only where the tokenizer adds one."""

from __future__ import annotations

import json

import pytest
from chat_families import build_tokenizer

from polyglot_llama.errors import UserError
from polyglot_llama.train.data import build_packed_dataset

DOCS = ["The first document.", "A second one."]


@pytest.fixture(scope="module")
def tokenizers(en_tokenizer_dir, tmp_path_factory):
    return {name: build_tokenizer(name, tmp_path_factory.mktemp(f"doc_{name}"), en_tokenizer_dir)
            for name in ("llama2", "llama3", "chatml", "gemma")}


def _packed_tokens(tokenizer, tmp_path, **options) -> list[str]:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in DOCS), encoding="utf-8")
    rows = build_packed_dataset(str(corpus), tokenizer, 64, document_masking=True, **options)
    (row,) = rows
    n = sum(label != -100 for label in row["labels"]) + 2  # the learned tokens, the first token of each document
    return tokenizer.convert_ids_to_tokens(row["input_ids"][:n])


@pytest.mark.parametrize("name, bos, end", [
    ("llama2", "<s>", "</s>"),               # eos is </s>; the tokenizer adds <s>
    ("llama3", "<|begin_of_text|>", "<|end_of_text|>"),  # eos <|eot_id|> closes turns
    ("chatml", None, "<|endoftext|>"),       # bos/eos are <|im_start|>/<|im_end|>, and no BOS is added
    ("gemma", "<bos>", "<eos>"),
])
def test_boundaries_per_family(tokenizers, name, bos, end):
    from polyglot_llama.train.data import document_boundaries

    tokenizer = tokenizers[name]
    bos_id, end_id = document_boundaries(tokenizer)
    assert bos_id == (None if bos is None else tokenizer.convert_tokens_to_ids(bos))
    assert end_id == tokenizer.convert_tokens_to_ids(end)


def test_chatml_documents_end_with_endoftext_and_have_no_bos(tokenizers, tmp_path):
    tokenizer = tokenizers["chatml"]
    tokens = _packed_tokens(tokenizer, tmp_path)
    first = tokenizer.convert_ids_to_tokens(tokenizer(DOCS[0], add_special_tokens=False)["input_ids"])
    second = tokenizer.convert_ids_to_tokens(tokenizer(DOCS[1], add_special_tokens=False)["input_ids"])
    assert tokens == first + ["<|endoftext|>"] + second + ["<|endoftext|>"]


def test_llama2_documents_keep_bos_and_eos(tokenizers, tmp_path):
    tokenizer = tokenizers["llama2"]
    tokens = _packed_tokens(tokenizer, tmp_path)
    first = tokenizer.convert_ids_to_tokens(tokenizer(DOCS[0], add_special_tokens=False)["input_ids"])
    second = tokenizer.convert_ids_to_tokens(tokenizer(DOCS[1], add_special_tokens=False)["input_ids"])
    assert tokens == ["<s>"] + first + ["</s>", "<s>"] + second + ["</s>"]


def test_end_of_text_key(tokenizers, tmp_path):
    tokenizer = tokenizers["chatml"]
    from polyglot_llama.train.data import document_boundaries

    assert _packed_tokens(tokenizer, tmp_path, end_of_text="<|im_end|>")[-1] == "<|im_end|>"
    with pytest.raises(UserError, match="data.end_of_text.*not a token"):
        document_boundaries(tokenizer, "<|nope|>")


class _Tokenizer:
    """The attributes `document_boundaries` reads, for vocabularies no fixture has."""

    bos_token_id = None

    def __init__(self, eos: str, vocab: list[str], chat_template: str | None = None):
        self.eos_token, self.chat_template = eos, chat_template
        self.vocab = {token: i for i, token in enumerate(vocab)}

    def get_vocab(self):
        return dict(self.vocab)

    def __call__(self, text):
        return {"input_ids": [self.vocab["a"]]}


def test_eos_rule():
    from polyglot_llama.train.data import document_boundaries

    chatml = "{{ '<|im_start|>' + m['content'] + '<|im_end|>' }}"
    # A turn marker (written by the template or named like one) is passed over for an end-of-text name.
    assert document_boundaries(_Tokenizer("<|im_end|>", ["a", "<|im_end|>", "</s>"], chatml)) == (None, 2)
    phi = "{{ '<|user|>' + m['content'] + '<|end|>' }}"  # Phi-3 closes turns with <|end|>
    assert document_boundaries(_Tokenizer("<|end|>", ["a", "<|end|>", "<|endoftext|>"], phi)) == (None, 2)
    assert document_boundaries(_Tokenizer("<end_of_turn>", ["a", "<end_of_turn>", "<eos>"])) == (None, 2)
    # Any other eos is the end of text.
    assert document_boundaries(_Tokenizer("<|end_doc|>", ["a", "<|end_doc|>", "</s>"], chatml)) == (None, 1)
    with pytest.raises(UserError, match="closes chat turns.*data.end_of_text"):
        document_boundaries(_Tokenizer("<|im_end|>", ["a", "<|im_start|>", "<|im_end|>"], chatml))
