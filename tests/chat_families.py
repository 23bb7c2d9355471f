"""Tiny tokenizers with the chat conventions of four model families (importable as `chat_families`).

Each family's template is written out twice: ``plain`` has the structure of the published template (what a
downloaded tokenizer carries: no ``{% generation %}`` blocks), ``marked`` is the same text with
``{% generation %}`` around each answer and its end-of-turn token, so transformers' own
``return_assistant_tokens_mask`` gives an answer mask that does not come from our code.

- llama2: Meta's Llama-2-chat template, on the project's Llama-2-style SentencePiece-BPE sample tokenizer.
- llama3: Llama 3 Instruct's header/``<|eot_id|>`` template, byte-level BPE, ``<|begin_of_text|>`` BOS.
- chatml: SmolLM2-Instruct's ChatML (default system prompt), byte-level BPE whose bos/eos are
  ``<|im_start|>``/``<|im_end|>`` and whose end-of-text is ``<|endoftext|>``; no BOS added.
- gemma: Gemma 3's ``<start_of_turn>``/``<end_of_turn>`` template (system folded into the first user turn)
  on the SentencePiece-BPE sample tokenizer with Gemma's special tokens.
"""

from __future__ import annotations

from pathlib import Path

from polyglot_test_utils import sample_texts

_LLAMA2_HEAD = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}"
)
_LLAMA3_HEAD = (
    "{% for message in messages %}{% if loop.index0 == 0 %}{{ bos_token }}{% endif %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
)
_CHATML_HEAD = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
    "{% endif %}{{ '<|im_start|>' + message['role'] + '\\n' }}"
)
_CHATML_TAIL = "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
_GEMMA_HEAD = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{% set first_user_prefix = messages[0]['content'] + '\\n\\n' %}{% set loop_messages = messages[1:] %}"
    "{% else %}{% set first_user_prefix = '' %}{% set loop_messages = messages %}{% endif %}"
    "{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'assistant' %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') }}"
)
_GEMMA_TAIL = "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"


def _gen(body: str, marked: bool) -> str:
    return "{% generation %}" + body + "{% endgeneration %}" if marked else body


def template(family: str, marked: bool) -> str:
    if family == "llama2":
        return (_LLAMA2_HEAD + _gen("{{ ' ' + content.strip() + ' ' + eos_token }}", marked)
                + "{% endif %}{% endfor %}")
    if family == "llama3":
        return (_LLAMA3_HEAD + "{% if message['role'] == 'assistant' %}"
                + _gen("{{ message['content'] | trim }}{{ '<|eot_id|>' }}", marked)
                + "{% else %}{{ message['content'] | trim + '<|eot_id|>' }}{% endif %}{% endfor %}"
                "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")
    if family == "chatml":
        return (_CHATML_HEAD + "{% if message['role'] == 'assistant' %}"
                + _gen("{{ message['content'] + '<|im_end|>' }}", marked)
                + "{{ '\\n' }}{% else %}{{ message['content'] + '<|im_end|>\\n' }}{% endif %}" + _CHATML_TAIL)
    if family == "gemma":
        return (_GEMMA_HEAD + "{% if message['role'] == 'assistant' %}"
                + _gen("{{ message['content'] | trim }}{{ '<end_of_turn>' }}", marked)
                + "{{ '\\n' }}{% else %}{{ message['content'] | trim }}{{ '<end_of_turn>\\n' }}{% endif %}" + _GEMMA_TAIL)
    raise ValueError(family)


FAMILIES = ("llama2", "llama3", "chatml", "gemma")
END_OF_TURN = {"llama2": "</s>", "llama3": "<|eot_id|>", "chatml": "<|im_end|>", "gemma": "<end_of_turn>"}


def _byte_level_bpe(special: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=special, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(sample_texts("en"), trainer)
    return tok


def build_tokenizer(family: str, directory: Path, llama2_dir: Path | None = None):
    """Save the family's tokenizer (plain template installed) to ``directory`` and load it back.

    ``llama2_dir``: the project's Llama-2-style sample tokenizer (the llama2 and gemma families build on it).
    """
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    from polyglot_llama.model.checkpoint import load_tokenizer

    if family in ("llama2", "gemma"):
        tok = Tokenizer.from_file(str(llama2_dir / "tokenizer.json"))
        if family == "llama2":
            names = dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>")
        else:
            tok.add_special_tokens(["<bos>", "<eos>", "<pad>", "<start_of_turn>", "<end_of_turn>"])
            tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", tok.token_to_id("<bos>"))])
            names = dict(bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")
    elif family == "llama3":
        tok = _byte_level_bpe(["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"])
        bos = tok.token_to_id("<|begin_of_text|>")
        tok.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", bos)])
        names = dict(bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
    else:
        tok = _byte_level_bpe(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
        names = dict(bos_token="<|im_start|>", eos_token="<|im_end|>", unk_token="<|endoftext|>", pad_token="<|im_end|>")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, chat_template=template(family, marked=False), **names)
    fast.save_pretrained(directory)
    return load_tokenizer(directory)
