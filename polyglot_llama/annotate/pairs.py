"""Answer pairs for annotation: two samples per prompt from two checkpoints and/or two temperatures.

Llama 2 showed annotators two answers "sampled from two different model variants, and varying the
temperature hyper-parameter" (Touvron et al. 2023, §3.2.1). Prompts are rendered with each model's own chat
template (`rlhf.prompts.encode_prompts`), sampled with the rejection-sampling generator (per-prompt seeds,
so a rerun gives the same pairs), and shown in a seeded random order so that neither side is always model A.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import UserError
from ..io import RejectCounter

if TYPE_CHECKING:
    from ..rlhf.prompts import Prompt


@dataclass
class PairSourceConfig:
    model_a: str = ""
    """Checkpoint directory of the first model (empty: no live generation; pre-generated pairs only)."""
    model_b: str = ""
    """Checkpoint directory of the second model (empty: model_a again, so the pair differs by temperature)."""
    temperature_a: float = 0.7
    """Sampling temperature of answer source A."""
    temperature_b: float = 1.0
    """Sampling temperature of answer source B (Llama 2 varied the temperature between the two answers)."""
    top_p: float = 0.9
    """Nucleus sampling for both sources (1.0 = off)."""
    max_new_tokens: int = 256
    """Longest answer, in tokens."""
    max_prompt_tokens: int = 2048
    """Prompts longer than this (after the chat template) are skipped and counted."""
    seed: int = 0
    """Seed of the samples and of the A/B order."""

    def __post_init__(self):
        for key in ("temperature_a", "temperature_b"):
            if not getattr(self, key) > 0:
                raise UserError(f"key '{key}' is {getattr(self, key)}; it must be positive (sampled answers)")
        if not 0 < self.top_p <= 1 or self.max_new_tokens < 1 or self.max_prompt_tokens < 1:
            raise UserError("key 'top_p' must be in (0, 1], 'max_new_tokens' and 'max_prompt_tokens' at least 1")
        if self.model_b and not self.model_a:
            raise UserError("key 'model_b' is set but 'model_a' is empty; set model_a (and model_b if it differs)")
        if not self.model_b and self.model_a and self.temperature_a == self.temperature_b:
            raise UserError("one model at one temperature gives two samples of the same distribution; "
                            "set model_b or different temperature_a/temperature_b")

    @property
    def enabled(self) -> bool:
        return bool(self.model_a)


@dataclass
class Pair:
    prompt: "Prompt"
    answer_a: str
    answer_b: str
    source_a: str
    source_b: str


class PairGenerator:
    """Loads the one or two models once; `pairs` may be called from several threads (one at a time).

    torch and the generation code are imported here, not at module level, so a server without a model
    starts in a fraction of a second."""

    def __init__(self, cfg: PairSourceConfig):
        from ..rlhf.runtime import load_policy

        if not cfg.enabled:
            raise UserError("no model to generate answers with; set pair_source.model_a")
        self.cfg = cfg
        self.model_a, self.tokenizer_a = load_policy(cfg.model_a)
        if cfg.model_b and cfg.model_b != cfg.model_a:
            self.model_b, self.tokenizer_b = load_policy(cfg.model_b)
        else:
            self.model_b, self.tokenizer_b = self.model_a, self.tokenizer_a
        for model in (self.model_a, self.model_b):
            model.eval()
        self.sources = (f"{cfg.model_a}@T={cfg.temperature_a}", f"{cfg.model_b or cfg.model_a}@T={cfg.temperature_b}")
        self._lock = threading.Lock()

    def _sample(self, model, tokenizer, prompts: list["Prompt"], temperature: float, side: str, rejects) -> dict[str, str]:
        from ..rlhf.generation import SamplingConfig, derive_seed, generate
        from ..rlhf.prompts import Prompt, encode_prompts

        encoded = encode_prompts([Prompt(p.id, p.lang, p.messages, p.is_safety, p.category) for p in prompts],
                                 tokenizer, self.cfg.max_prompt_tokens, rejects)
        sampling = SamplingConfig(max_new_tokens=self.cfg.max_new_tokens, temperature=temperature,
                                  top_p=self.cfg.top_p, backend="hf")
        seeds = [derive_seed(self.cfg.seed, side, p.id) for p in encoded]
        out = generate(model, tokenizer, [p.ids for p in encoded], sampling, seeds, progress=False)
        return {p.id: g.text for p, g in zip(encoded, out)}

    def pairs(self, prompts: list["Prompt"], rejects: RejectCounter | None = None) -> list[Pair]:
        """One pair per usable prompt; prompts too long, or whose two answers are identical or empty, are
        counted in ``rejects`` (file 'generation', line = position in ``prompts``)."""
        rejects = rejects if rejects is not None else RejectCounter()
        with self._lock:
            a = self._sample(self.model_a, self.tokenizer_a, prompts, self.cfg.temperature_a, "a", rejects)
            b = self._sample(self.model_b, self.tokenizer_b, prompts, self.cfg.temperature_b, "b", rejects)
        out = []
        for i, prompt in enumerate(prompts, 1):
            if prompt.id not in a or prompt.id not in b:
                continue  # already counted by encode_prompts
            if not a[prompt.id] or not b[prompt.id]:
                rejects.add("generation", i, "empty answer", prompt.id)
            elif a[prompt.id] == b[prompt.id]:
                rejects.add("generation", i, "identical answers", prompt.id)
            else:
                swap = random.Random(f"{self.cfg.seed}/order/{prompt.id}").random() < 0.5
                pair = (a[prompt.id], b[prompt.id], *self.sources)
                if swap:
                    pair = (pair[1], pair[0], pair[3], pair[2])
                out.append(Pair(prompt, *pair))
        return out
