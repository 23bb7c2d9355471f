"""Tokens/s and, on a GPU, model FLOPs utilisation (MFU) for the training loop's logs."""

from __future__ import annotations

import time

import torch

# Dense bf16 peak FLOP/s per GPU, from the vendors' data sheets (no sparsity).
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12, "L4": 121e12}


def peak_flops() -> float | None:
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((flops for key, flops in PEAK_BF16_FLOPS.items() if key in name), None)


def flops_per_token(model, seq_len: int) -> float:
    """Training FLOPs per token: 6·N for the matrices plus 12·L·d·T for attention scores (PaLM appendix B)."""
    config = model.config
    n_params = sum(p.numel() for name, p in model.named_parameters() if "embed_tokens" not in name)
    return 6 * n_params + 12 * config.num_hidden_layers * config.hidden_size * seq_len


class ThroughputMeter:
    """Counts input tokens over all processes; ``rates()`` gives tokens/s since the last call (and MFU)."""

    def __init__(self, model, world_size: int):
        self.model, self.world = model, world_size
        self.peak = peak_flops()
        self.start = self.last = time.perf_counter()
        self.tokens = self.total_tokens = 0
        self.seq_len = 0

    def add_tokens(self, batch: dict) -> None:
        ids = batch.get("input_ids")
        if ids is not None:
            self.tokens += ids.numel() * self.world
            self.seq_len = ids.shape[-1]

    def rates(self) -> dict[str, float]:
        now = time.perf_counter()
        elapsed = max(now - self.last, 1e-9)
        tokens_per_second = self.tokens / elapsed
        out = {"tokens_per_second": tokens_per_second}
        if self.peak and hasattr(self.model, "config") and self.seq_len:
            achieved = tokens_per_second * flops_per_token(self.model, self.seq_len)
            out["mfu"] = achieved / (self.peak * self.world)
        self.total_tokens += self.tokens
        self.tokens, self.last = 0, now
        return out

    def overall_tokens_per_second(self) -> float:
        return (self.total_tokens + self.tokens) / max(time.perf_counter() - self.start, 1e-9)
