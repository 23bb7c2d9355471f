"""Base tokenizers of every supported family, built locally in the exact shapes of the released files.

* ``llama2-legacy``: the released Llama 2 tokenizer.json shape: normaliser Prepend("▁") + Replace(" ", "▁"),
  no pre-tokenizer, merges as "a b" strings, a tokenizer_config.json naming LlamaTokenizer (the
  transformers-5 pitfall) with AddedToken dicts, and a chat template;
* ``llama2-metaspace``: the newer conversion: no normaliser, a Metaspace pre-tokenizer;
* ``gpt2``: byte-level BPE with the ByteLevel pre-tokenizer and one special token;
* ``llama3``: byte-level BPE behind Llama 3's split regex, ignore_merges, special tokens numbered after the
  model vocabulary (so new ids must skip them) and a chat template.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from polyglot_llama.tokenizer.train import train_llama_tokenizer

SAMPLE_DIR = Path(__file__).resolve().parents[3] / "polyglot_llama" / "resources" / "sample_text"

CHAT_TEMPLATE = "{% for m in messages %}{{ bos_token }}[INST] {{ m['content'] }} [/INST]{% endfor %}"
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def sample_texts(lang: str) -> list[str]:
    lines = (SAMPLE_DIR / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines if line.strip()]


@pytest.fixture(scope="session")
def texts() -> dict[str, list[str]]:
    """The bundled sample paragraphs by language."""
    return {lang: sample_texts(lang) for lang in ("en", "ko", "ja")}


def base_texts() -> list[str]:
    # English plus a little Korean, so that (as in Llama 2) some Hangul is known and most is not.
    return sample_texts("en") + sample_texts("ko")[:6]


def _added(content: str, id_: int) -> dict:
    return {"id": id_, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": True}


def _write(directory: Path, data: dict, config: dict, special_map: dict | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    if special_map:
        (directory / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2), encoding="utf-8")
    return directory


def _llama2(directory: Path, metaspace: bool) -> Path:
    data = json.loads(train_llama_tokenizer(base_texts(), 800).to_str())
    if metaspace:
        data["normalizer"] = None
        data["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    else:
        data["pre_tokenizer"] = None
        data["model"]["merges"] = [" ".join(m) for m in data["model"]["merges"]]
    token = lambda c: {"__type": "AddedToken", "content": c, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
    config = {"add_bos_token": True, "add_eos_token": False, "bos_token": token("<s>"), "eos_token": token("</s>"),
              "unk_token": token("<unk>"), "pad_token": None, "clean_up_tokenization_spaces": False, "legacy": False,
              "model_max_length": 4096, "tokenizer_class": "LlamaTokenizer", "chat_template": CHAT_TEMPLATE}
    return _write(directory, data, config, {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"})


def _byte_level(directory: Path, llama3: bool) -> Path:
    tokenizer = Tokenizer(models.BPE(ignore_merges=llama3))
    if llama3:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    else:
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>"] if not llama3 else []
    trainer = trainers.BpeTrainer(vocab_size=700, min_frequency=2, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=specials, show_progress=False)
    tokenizer.train_from_iterator(base_texts(), trainer=trainer)
    if not llama3:
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
        config = {"tokenizer_class": "GPT2Tokenizer", "add_prefix_space": False, "bos_token": "<|endoftext|>",
                  "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "model_max_length": 1024}
        return _write(directory, json.loads(tokenizer.to_str()), config)
    data = json.loads(tokenizer.to_str())
    size = len(data["model"]["vocab"])
    names = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|eot_id|>"]
    data["added_tokens"] = [_added(name, size + i) for i, name in enumerate(names)]
    data["post_processor"] = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                                                 {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                  {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [size], "tokens": ["<|begin_of_text|>"]}}},
    ]}
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
              "clean_up_tokenization_spaces": True, "model_max_length": 131072, "chat_template": CHAT_TEMPLATE,
              "added_tokens_decoder": {str(t["id"]): {k: v for k, v in t.items() if k != "id"} for t in data["added_tokens"]}}
    return _write(directory, data, config)


@pytest.fixture(scope="session")
def family_tokenizer_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("family_tokenizers")
    return {
        "llama2-legacy": _llama2(root / "llama2-legacy", metaspace=False),
        "llama2-metaspace": _llama2(root / "llama2-metaspace", metaspace=True),
        "gpt2": _byte_level(root / "gpt2", llama3=False),
        "llama3": _byte_level(root / "llama3", llama3=True),
    }
