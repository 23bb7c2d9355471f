"""Reward functions for rejection sampling and PPO: the reward models' combined reward, or a programmatic one.

Every reward is a score in [0, 1] per (prompt, response):

- ``reward_models``: Llama 2's R_c from the helpfulness and safety RMs' sigmoid probabilities
  (`combined_reward.combined_reward`: the safety score for safety prompts or unsafe answers, else the
  helpfulness score). With only one RM configured, that RM's probability.
- ``target_script``: the share of the response's letters written in the script of the prompt's language
  (Hangul for ko, Cyrillic for ru, ...). No model needed: for tests, the demo, and as a cheap sanity reward.
- ``target_language``: the language-ID model's probability that the response is in the prompt's language.

PPO shapes the score with `shape_rewards` (the paper's WHITEN(LOGIT(R_c)) by default).
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass
from typing import Callable, Literal

import torch
from torch import nn

from ..errors import UserError
from ..runtime import frozen_dtype
from .prompts import Prompt

log = logging.getLogger(__name__)

# Unicode name prefixes of each language's script; languages not listed are written in Latin script.
SCRIPTS: dict[str, tuple[str, ...]] = {
    "ko": ("HANGUL",), "ja": ("HIRAGANA", "KATAKANA", "CJK"), "zh": ("CJK",), "yue": ("CJK",),
    "ru": ("CYRILLIC",), "uk": ("CYRILLIC",), "bg": ("CYRILLIC",), "sr": ("CYRILLIC",), "kk": ("CYRILLIC",),
    "mn": ("CYRILLIC",), "ar": ("ARABIC",), "fa": ("ARABIC",), "ur": ("ARABIC",), "hi": ("DEVANAGARI",),
    "mr": ("DEVANAGARI",), "ne": ("DEVANAGARI",), "bn": ("BENGALI",), "ta": ("TAMIL",), "te": ("TELUGU",),
    "th": ("THAI",), "el": ("GREEK",), "he": ("HEBREW",), "ka": ("GEORGIAN",), "hy": ("ARMENIAN",),
    "km": ("KHMER",), "my": ("MYANMAR",), "am": ("ETHIOPIC",), "si": ("SINHALA",), "lo": ("LAO",),
}


@dataclass
class RewardConfig:
    kind: Literal["reward_models", "target_script", "target_language"] = "reward_models"
    """reward_models: Llama 2's combined reward of the RMs below; target_script / target_language: programmatic."""
    helpfulness_model: str = ""
    """Helpfulness reward-model directory (from `polyglot-llama reward`)."""
    safety_model: str = ""
    """Safety reward-model directory."""
    safety_threshold: float = 0.15
    """R_c uses the safety score when the prompt is a safety prompt or the safety probability is below this."""
    tokenizer_mismatch: Literal["retokenize", "error"] = "retokenize"
    """An RM whose tokenizer differs from the policy's: score the decoded text with the RM's own tokenizer, or stop."""
    batch_size: int = 8
    """Sequences per reward-model forward pass."""
    lid_model: str = ""
    """fastText language-ID model for target_language (empty: the default lid.176)."""

    def __post_init__(self):
        if self.kind == "reward_models" and not (self.helpfulness_model or self.safety_model):
            raise UserError("reward.kind is 'reward_models' but neither reward.helpfulness_model nor "
                            "reward.safety_model is set; give an RM directory or use kind: target_script")
        if not 0 < self.safety_threshold < 1:
            raise UserError(f"key 'reward.safety_threshold' is {self.safety_threshold}; it must be in (0, 1)")
        if self.batch_size < 1:
            raise UserError(f"key 'reward.batch_size' is {self.batch_size}; it must be at least 1")


def script_share(text: str, lang: str) -> float:
    """Share of the letters of ``text`` in the script of ``lang`` (0.0 for a text without letters)."""
    scripts = SCRIPTS.get(lang, ("LATIN",))
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return 0.0
    hits = sum(unicodedata.name(ch, "").startswith(scripts) for ch in letters)
    return hits / len(letters)


def _same_vocabulary(a, b) -> bool:
    return len(a) == len(b) and a.get_vocab() == b.get_vocab()


class RewardScorer:
    """``scorer(prompts, responses) -> Tensor[N]`` in [0, 1]; ``scorer.info`` says how it scores."""

    def __init__(self, cfg: RewardConfig, policy_tokenizer=None, device: str | torch.device | None = None,
                 place: Callable[[nn.Module], nn.Module] | None = None):
        """RMs go to ``device`` whole in the frozen dtype, or, with ``place`` (e.g. `Runtime.frozen`), are
        loaded on the CPU and handed to it to be kept whole, sharded or offloaded."""
        self.cfg = cfg
        self.info: dict = {"kind": cfg.kind}
        self.models: dict[str, tuple] = {}
        if cfg.kind == "reward_models":
            from ..model.reward_model import load_reward_model

            for name, path in (("helpfulness", cfg.helpfulness_model), ("safety", cfg.safety_model)):
                if not path:
                    continue
                if place is not None:
                    model, tokenizer = load_reward_model(path)
                    model = place(model)
                else:  # frozen: bf16 on GPUs that support it, fp32 elsewhere (the runtime's rule)
                    dtype = frozen_dtype(torch.device(device)) if device is not None else None
                    model, tokenizer = load_reward_model(path, dtype=dtype, device=device)
                if policy_tokenizer is not None and not _same_vocabulary(tokenizer, policy_tokenizer):
                    if cfg.tokenizer_mismatch == "error":
                        raise UserError(f"{path}: the {name} RM's tokenizer differs from the policy's; use an RM trained "
                                        "from the policy's checkpoint, or set reward.tokenizer_mismatch: retokenize")
                    log.warning("%s RM %s has its own tokenizer: responses are re-tokenised from text for it", name, path)
                    self.info[f"{name}_retokenized"] = True
                self.models[name] = (model, tokenizer)
        elif cfg.kind == "target_language":
            from ..corpus.lid import load_lid_model

            self.lid = load_lid_model(cfg.lid_model or None)

    def _rm_probability(self, name: str, prompts: list[Prompt], responses: list[str],
                        finished: list[bool] | None) -> torch.Tensor:
        from ..model.reward_model import score

        model, tokenizer = self.models[name]
        raw = score(model, tokenizer, [p.messages for p in prompts], responses, batch_size=self.cfg.batch_size,
                    finished=finished)
        return torch.sigmoid(raw)

    def __call__(self, prompts: list[Prompt], responses: list[str], finished: list[bool] | None = None) -> torch.Tensor:
        """Scores [N]; ``finished[i]`` False (an answer cut at max_new_tokens) makes the RMs read it without
        the closing ``</s>`` a finished answer has (default: every answer finished)."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        if self.cfg.kind == "target_script":
            return torch.tensor([script_share(r, p.lang) for p, r in zip(prompts, responses)])
        if self.cfg.kind == "target_language":
            return torch.tensor([self._language_probability(r, p.lang) for p, r in zip(prompts, responses)])
        probs = {name: self._rm_probability(name, prompts, responses, finished) for name in self.models}
        if len(probs) == 1:
            return next(iter(probs.values()))
        from .combined_reward import combined_reward

        is_safety = torch.tensor([p.is_safety for p in prompts])
        return combined_reward(probs["helpfulness"], probs["safety"], is_safety, threshold=self.cfg.safety_threshold)

    def _language_probability(self, text: str, lang: str) -> float:
        return sum(prob for code, prob in self.lid.predict(text, k=5) if code == lang)


def shape_rewards(scores: torch.Tensor, shaping: str) -> torch.Tensor:
    """PPO's scalar reward per response from scores in [0, 1].

    logit_whiten: WHITEN(LOGIT(R_c)) as in Llama 2 (LOGIT clamps, so a perfect 0 or 1 stays finite);
    whiten: batch whitening only; none: the score as it is. A batch of one is not whitened.
    """
    from .combined_reward import logit, whiten

    scores = scores.float()
    if shaping == "none":
        return scores
    if shaping == "logit_whiten":
        scores = logit(scores)
    return whiten(scores) if scores.numel() > 1 else scores
