"""Batched sampling for rejection sampling, PPO rollouts, context distillation and evaluation.

`generate(model, tokenizer, prompts, sampling, seeds)` samples one answer per prompt (token ids, e.g. from
`chat.encode_prompt`). The default backend is Hugging Face ``generate`` (KV cache, left padding, stop at
EOS); prompts are sorted by length before batching so a batch carries little padding.

Per-prompt seeds: HF's sampler draws from one global RNG, so a prompt's answer would change with whatever
else shares its batch. We instead run HF's greedy path behind `PerRowSampler`, which adds Gumbel noise drawn
from one `torch.Generator` per row to the tempered, top-p-truncated logits: argmax(logits/T + Gumbel) is an
exact sample of softmax(logits/T), and each row's noise depends only on its own seed. The same seed gives
the same answer alone or in any batch (up to float round-off between batch shapes).

The vLLM backend (``backend: vllm``, or ``auto`` when vLLM is importable and a GPU is present) reads the
model from its directory and passes the same per-prompt seeds to vLLM's sampler; its samples are
reproducible per seed but differ from the HF backend's.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch

from ..errors import UserError
from ..progress import phase
from ..runtime import input_device, is_sharded

log = logging.getLogger(__name__)


@dataclass
class SamplingConfig:
    max_new_tokens: int = 256
    """Most tokens generated per answer; an answer that has not produced EOS by then is cut (finished=False)."""
    temperature: float = 1.0
    """Softmax temperature; 0 means greedy decoding."""
    top_p: float = 1.0
    """Nucleus sampling: sample from the smallest set of tokens whose probability reaches top_p (1.0 = off)."""
    batch_size: int = 32
    """Prompts per generation batch (HF backend)."""
    backend: Literal["auto", "hf", "vllm"] = "auto"
    """hf: transformers generate; vllm: vLLM (needs it installed and the model on disk); auto: vllm when usable."""
    repetition_penalty: float = 1.0
    """Penalty on tokens already in the sequence (1.0 = off). The checkpoint's generation_config is never inherited."""
    no_repeat_ngram_size: int = 0
    """Forbid repeating n-grams of this size (0 = off; HF backend only)."""

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise UserError(f"key 'max_new_tokens' is {self.max_new_tokens}; it must be at least 1")
        if self.temperature < 0:
            raise UserError(f"key 'temperature' is {self.temperature}; use 0 (greedy) or a positive value")
        if not 0 < self.top_p <= 1:
            raise UserError(f"key 'top_p' is {self.top_p}; it must be in (0, 1]")
        if self.batch_size < 1:
            raise UserError(f"key 'batch_size' is {self.batch_size}; it must be at least 1")
        if self.repetition_penalty <= 0 or self.no_repeat_ngram_size < 0:
            raise UserError("key 'repetition_penalty' must be > 0 and 'no_repeat_ngram_size' ≥ 0 (1.0 and 0 are off)")

    def is_plain(self) -> bool:
        """True when answers are samples of softmax(logits / T), nothing else: what PPO's log-probs assume."""
        return self.top_p == 1.0 and self.repetition_penalty == 1.0 and self.no_repeat_ngram_size == 0


@dataclass
class Generation:
    prompt_ids: list[int]
    completion_ids: list[int]
    """Generated ids, including the final EOS when the answer finished."""
    text: str
    """The answer decoded without special tokens, stripped."""
    finished: bool
    """True when the answer ended with EOS (False: cut at max_new_tokens)."""


def derive_seed(*keys) -> int:
    """A stable 63-bit seed from any keys, e.g. ``derive_seed(run_seed, round, prompt_id, sample_index)``."""
    digest = hashlib.blake2b("\x1f".join(map(str, keys)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()


class PerRowSampler:
    """A logits processor that turns HF greedy decoding into seeded per-row sampling (see module docstring)."""

    def __init__(self, seeds: list[int], temperature: float, top_p: float, device: torch.device):
        self.temperature = temperature
        self.top_p = top_p
        self.generators = []
        for seed in seeds:
            gen = torch.Generator(device=device)
            gen.manual_seed(seed)
            self.generators.append(gen)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        # scores: [B, V] next-token logits (float)
        if self.temperature == 0:
            return scores
        scores = scores.float() / self.temperature
        if self.top_p < 1.0:
            scores = top_p_filter(scores, self.top_p)
        uniform = torch.stack([
            torch.rand(scores.shape[-1], generator=gen, device=scores.device) for gen in self.generators
        ])
        gumbel = -torch.log(-torch.log(uniform.clamp_min(1e-20)))
        return scores + gumbel


def top_p_filter(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """Set to -inf every logit outside the smallest top-probability set whose mass reaches ``top_p``."""
    sorted_scores, order = scores.sort(dim=-1, descending=True)
    probs = sorted_scores.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # probability of the tokens ranked above each one
    drop_sorted = mass_before >= top_p  # the top token has mass_before 0 and is always kept
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return scores.masked_fill(drop, float("-inf"))


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def _left_pad(batch: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, batch))
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, prompt in enumerate(batch):
        ids[row, width - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
        mask[row, width - len(prompt):] = 1
    return ids.to(device), mask.to(device)


def _finish(tokenizer, prompt: list[int], new_ids: list[int], eos_id: int) -> Generation:
    if eos_id in new_ids:
        new_ids = new_ids[: new_ids.index(eos_id) + 1]
        finished = True
    else:
        finished = False
    text = tokenizer.decode(new_ids, skip_special_tokens=True).strip()
    return Generation(list(prompt), new_ids, text, finished)


@contextmanager
def neutral_generation_config(model):
    """Hide the checkpoint's ``generation_config`` (repetition penalty, no-repeat n-grams, top-k, …) for the
    duration: HF ``generate`` fills every field we leave unset from it, which would run processors before our
    sampler that the config never asked for."""
    from transformers import GenerationConfig

    saved = getattr(model, "generation_config", None)
    model.generation_config = GenerationConfig()
    try:
        yield
    finally:
        model.generation_config = saved


@torch.no_grad()
def _generate_hf(model, tokenizer, prompts, sampling: SamplingConfig, seeds, progress: bool) -> list[Generation]:
    from transformers import GenerationConfig, LogitsProcessorList

    device = input_device(model)
    # Weights split over ranks: every rank keeps decoding until all are done (a rank whose answers ended
    # early would otherwise leave the others waiting in a collective forever).
    synced = is_sharded(model)
    eos_id, pad_id = tokenizer.eos_token_id, _pad_id(tokenizer)
    config = GenerationConfig(
        do_sample=False, max_new_tokens=sampling.max_new_tokens, eos_token_id=eos_id, pad_token_id=pad_id,
        bos_token_id=tokenizer.bos_token_id, use_cache=True, repetition_penalty=sampling.repetition_penalty,
        no_repeat_ngram_size=sampling.no_repeat_ngram_size,
    )
    was_training = model.training
    model.eval()
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # similar lengths share a batch
    results: list[Generation | None] = [None] * len(prompts)
    bar = phase(total=len(prompts), desc="generate", unit="prompt", disable=not progress, leave=False)
    for start in range(0, len(order), sampling.batch_size):
        rows = order[start:start + sampling.batch_size]
        ids, mask = _left_pad([prompts[i] for i in rows], pad_id, device)
        sampler = PerRowSampler([seeds[i] for i in rows], sampling.temperature, sampling.top_p, device)
        with neutral_generation_config(model):
            out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config,
                                 logits_processor=LogitsProcessorList([sampler]), synced_gpus=synced)
        for row, i in enumerate(rows):
            results[i] = _finish(tokenizer, prompts[i], out[row, ids.shape[1]:].tolist(), eos_id)
        bar.update(len(rows))
    bar.close()
    model.train(was_training)
    return results  # type: ignore[return-value]


class VLLMEngine:
    """A vLLM engine on this process's GPU, created once from a model directory and kept across rollouts.

    `load_weights` replaces its weights in place (the PPO policy after each update, as TRL's colocate mode
    and OpenRLHF do): vLLM's ``LLM.apply_model`` hands the engine's model to a function that calls the
    model's own ``load_weights(iterable of (name, tensor))``, then the prefix cache, whose KV blocks were
    computed with the old weights, is dropped. The engine runs in this process
    (VLLM_ENABLE_V1_MULTIPROCESSING=0), so the tensors are not serialised to a worker. Not run in this
    project's tests (no GPU, no vLLM): see docs/rlhf.md.
    """

    def __init__(self, model_path: str, tokenizer, gpu_memory_utilization: float = 0.9):
        import os

        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM

        self.tokenizer = tokenizer
        # generation_config="vllm": vLLM's neutral defaults, not the checkpoint's generation_config.json
        self.llm = LLM(model=model_path, tokenizer=model_path, trust_remote_code=False, generation_config="vllm",
                       gpu_memory_utilization=gpu_memory_utilization)

    def generate(self, prompts: list[list[int]], sampling: SamplingConfig, seeds: list[int]) -> list[Generation]:
        from vllm import SamplingParams

        params = [SamplingParams(temperature=sampling.temperature, top_p=sampling.top_p, seed=seed,
                                 repetition_penalty=sampling.repetition_penalty, max_tokens=sampling.max_new_tokens)
                  for seed in seeds]
        outputs = self.llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
        eos_id = self.tokenizer.eos_token_id
        return [_finish(self.tokenizer, p, list(o.outputs[0].token_ids), eos_id) for p, o in zip(prompts, outputs)]

    def load_weights(self, weights) -> None:
        self.llm.apply_model(lambda model: model.load_weights(weights))
        self.llm.reset_prefix_cache()


def resolve_backend(sampling: SamplingConfig, model_path: str | None) -> str:
    if sampling.backend == "vllm" and sampling.no_repeat_ngram_size:
        raise UserError("key 'no_repeat_ngram_size' is set but vLLM has no such option; use backend: hf or set it to 0")
    if sampling.backend == "vllm":
        if not vllm_available():
            raise UserError("key 'backend' is 'vllm' but vLLM is not installed or no GPU is visible; "
                            "pip install 'polyglot-llama[vllm]' on a GPU machine, or use backend: hf")
        if not model_path:
            raise UserError("key 'backend' is 'vllm' but the model is not on disk; vLLM loads models from a directory")
        return "vllm"
    if sampling.backend == "auto" and model_path and vllm_available():
        return "vllm"
    return "hf"


def generate(model, tokenizer, prompts: list[list[int]], sampling: SamplingConfig, seeds: list[int],
             model_path: str | None = None, progress: bool = True) -> list[Generation]:
    """Sample one answer per prompt; ``seeds[i]`` fixes prompt i's answer regardless of batching.

    ``prompts`` are token-id lists (with BOS, e.g. from `chat.encode_prompt`). ``model_path``, the model's
    directory, lets the vLLM backend run; without it (e.g. a PPO policy mid-training) the HF backend is used.
    """
    if len(seeds) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    if not prompts:
        return []
    if any(len(p) == 0 for p in prompts):
        raise UserError("an encoded prompt is empty; every prompt needs at least one token")
    if resolve_backend(sampling, model_path) == "vllm":
        return VLLMEngine(str(model_path), tokenizer).generate(prompts, sampling, seeds)
    return _generate_hf(model, tokenizer, prompts, sampling, seeds, progress)
