"""Llama shapes as `transformers.LlamaConfig`: the paper's 7B/13B/34B/70B and tiny ones for tests and the demo.

The vocabulary size, BOS/EOS/PAD ids come from the tokenizer at `model init` time; the preset fixes only
the shape. Llama 2 used GQA only for 34B and 70B (8 KV heads); the tiny presets use GQA too, so the tests
exercise the grouped-query code path that real 70B checkpoints take.
"""

from __future__ import annotations

from transformers import LlamaConfig

from ..errors import UserError

# (layers, hidden, heads, kv heads, FFN, context)
PRESETS: dict[str, tuple[int, int, int, int, int, int]] = {
    "tiny": (2, 64, 4, 2, 176, 512),  # ~0.6M params + embeddings: unit and stage tests
    "small": (4, 128, 4, 2, 352, 1024),  # ~7M with an 8k vocabulary: the demo
    "1b": (22, 2048, 32, 4, 5632, 4096),  # TinyLlama-1.1B shape: GPU throughput checks
    "llama2-7b": (32, 4096, 32, 32, 11008, 4096),
    "llama2-13b": (40, 5120, 40, 40, 13824, 4096),
    "llama2-34b": (48, 8192, 64, 8, 22016, 4096),
    "llama2-70b": (80, 8192, 64, 8, 28672, 4096),
}


def preset_config(name: str, vocab_size: int = 32000, **overrides) -> LlamaConfig:
    """The `LlamaConfig` of a preset; ``overrides`` replace any LlamaConfig attribute."""
    if name not in PRESETS:
        raise UserError(f"unknown model preset {name!r}; choose one of: {', '.join(PRESETS)}")
    layers, hidden, heads, kv_heads, ffn, context = PRESETS[name]
    values = dict(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=ffn,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=context,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        hidden_act="silu",
        tie_word_embeddings=False,
        initializer_range=0.02,
    )
    values.update(overrides)
    return LlamaConfig(**values)
