"""The causal-LM loss of a Hugging Face model computed from its final hidden states, chunk by chunk.

A ``*ForCausalLM`` forward returns logits [B, T, V] (fp32 on CPU, bf16 under autocast) and the loss then
makes an fp32 copy: at B=8, T=4096, V=46k that is 6 GB each. Here a forward pre-hook on the output
embedding (the LM head) takes the hidden states the head is about to project, computes the loss with
`losses.linear_cross_entropy` (never more than one [chunk, V] block of logits) and hands the head an
empty slice, so the model's own logits are [B, 0, V]. The hook runs inside the model's forward, where a
sharded (FSDP2) head holds its gathered weight, so the same code serves one process, DDP and FSDP.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .losses import IGNORE_INDEX, causal_lm_loss, linear_cross_entropy

CHUNK_BYTES = 32 * 2**20
"""fp32 logits made at once: 32 MiB is 170 rows at V=49152, 262 at V=32000. The block exists at the step's
peak of memory (the end of the forward). Measured on the SmolLM2-135M head (1024 rows, 2 shared cores): the loss
rose the resident size 63 MB above its result at 32 MiB, 127 MB at 64 MiB (191 MB when a logsumexp block sat
beside the logits), at about the same speed; 16 MiB ran ~1.5× slower (the fp32 [V, H] weight gradient is
read and written once per chunk)."""


def chunk_rows(vocab_size: int) -> int:
    return max(64, CHUNK_BYTES // (4 * vocab_size))


def _core(model):
    """The module behind DDP/accelerate wrappers (FSDP2 and peft keep the module itself)."""
    return getattr(model, "module", model)


def _plain_linear_head(model) -> torch.nn.Module | None:
    """The LM head if the logits are exactly ``hidden @ head.weight.T`` (no bias, no soft-capping/scaling)."""
    core = _core(model)
    head = core.get_output_embeddings() if hasattr(core, "get_output_embeddings") else None
    config = getattr(core, "config", None)
    if not isinstance(head, torch.nn.Linear) or head.bias is not None:
        return None
    if getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None):
        return None
    return head


def causal_lm_model_loss(model, labels: torch.Tensor, chunk_size: int = 0, **inputs) -> tuple[torch.Tensor, int]:
    """Forward ``model(**inputs)`` and return (mean next-token loss over counted targets, their count).

    labels [B, T] with -100 where no loss; position t predicts labels[t + 1], as `losses.causal_lm_loss`.
    Models whose logits are not a plain linear head fall back to full logits and `causal_lm_loss`.
    ``chunk_size`` rows of logits are made at once (0: 32 MiB of fp32 logits, see `chunk_rows`).
    """
    head = _plain_linear_head(model)
    if head is None:
        logits = model(**inputs, use_cache=False).logits
        return causal_lm_loss(logits, labels)
    targets = F.pad(labels, (0, 1), value=IGNORE_INDEX)[:, 1:].reshape(-1)  # [B·T]
    n_tokens = int((targets != IGNORE_INDEX).sum())
    result = {}

    def project_and_score(module, args):
        hidden = args[0]  # [B, T, H]
        rows = chunk_size or chunk_rows(module.weight.shape[0])
        result["sum"] = linear_cross_entropy(hidden.reshape(-1, hidden.shape[-1]), module.weight, targets, rows)
        return (hidden[:, :0],)  # the head itself now projects nothing: logits [B, 0, V]

    handle = head.register_forward_pre_hook(project_and_score)
    try:
        model(**inputs, use_cache=False)
    finally:
        handle.remove()
    return result["sum"] / max(n_tokens, 1), n_tokens
