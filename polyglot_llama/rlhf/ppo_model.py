"""The PPO actor-critic: the policy (a causal LM) plus a value head on a shared trunk or on a separate model.

Rollout sequences are ``[left padding, prompt, response, right padding]``: every prompt ends at column
``P`` (the padded prompt width), so response token j sits at column P + j and is predicted from column
P + j − 1. `response_outputs` runs the LM head only on those R columns, so the [B, R, V] logits are all that
is materialised, never [B, L, V].
"""

from __future__ import annotations

import torch
from torch import nn

from ..model.checkpoint import read_model_config


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, … over each row's real tokens, whatever the padding side ([B, L] → [B, L])."""
    return (attention_mask.long().cumsum(-1) - 1).clamp_min(0)


class PolicyWithValue(nn.Module):
    """``policy`` (LlamaForCausalLM) + ``value_head`` (hidden → 1) on the policy's trunk (``value_model``
    None) or on a separate transformer (``value_model``: a LlamaModel)."""

    def __init__(self, policy: nn.Module, value_model: nn.Module | None = None):
        super().__init__()
        self.policy = policy
        self.value_model = value_model
        hidden = (value_model or policy).config.hidden_size
        self.value_head = nn.Linear(hidden, 1, dtype=torch.float32)
        nn.init.zeros_(self.value_head.weight)  # V ≡ 0 at the start: advantages begin as the rewards-to-go
        nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_width: int,
                response_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`response_outputs`: the call DDP / FSDP / DeepSpeed wrappers route through ``forward``."""
        return self.response_outputs(input_ids, attention_mask, prompt_width, response_len)

    def response_outputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_width: int,
                         response_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits [B, R, V] predicting the R response tokens, values [B, R] of the states before them)."""
        position_ids = position_ids_from_mask(attention_mask)
        cols = slice(prompt_width - 1, prompt_width - 1 + response_len)
        trunk = self.policy.get_decoder()
        hidden = trunk(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                       use_cache=False).last_hidden_state
        logits = self.policy.get_output_embeddings()(hidden[:, cols])
        if self.value_model is not None:
            hidden = self.value_model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                      use_cache=False).last_hidden_state
        values = self.value_head(hidden[:, cols].float()).squeeze(-1)
        return logits, values


def load_value_model(path: str, dtype: torch.dtype | None = None) -> nn.Module:
    """The transformer trunk (LlamaModel) of a causal-LM or reward-model checkpoint, for a separate critic."""
    from transformers import AutoModel

    read_model_config(path)
    return AutoModel.from_pretrained(path, dtype=dtype or torch.float32, use_safetensors=True, trust_remote_code=False)


@torch.no_grad()
def reference_logprobs(reference: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                       prompt_width: int, response_len: int, temperature: float = 1.0) -> torch.Tensor:
    """log π_0 of the response tokens under the frozen reference policy at the sampling temperature: [B, R] (fp32).

    One call of the model itself (not of its submodules), so a sharded or offloaded reference gathers its
    root weights (embeddings, LM head) the way it does for any forward; ``logits_to_keep`` limits the LM
    head to the R columns P − 1 … P + R − 2 that predict the response."""
    columns = torch.arange(prompt_width - 1, prompt_width - 1 + response_len, device=input_ids.device)
    logits = reference(input_ids=input_ids, attention_mask=attention_mask,
                       position_ids=position_ids_from_mask(attention_mask), use_cache=False,
                       logits_to_keep=columns).logits
    return gather_logprobs(logits, input_ids[:, prompt_width:prompt_width + response_len], temperature)


def gather_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """logits [B, R, V], tokens [B, R] → log softmax(logits / T)(token) [B, R] in fp32.

    T is the sampling temperature: the answers were drawn from softmax(logits / T), so the behaviour, current
    and reference policies are all compared on that distribution (as TRL does); raw logits would make PPO
    off-policy whenever T ≠ 1."""
    return torch.log_softmax(logits.float() / temperature, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
