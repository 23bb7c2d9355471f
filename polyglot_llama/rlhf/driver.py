"""`polyglot-llama rlhf`: the iteration driver (Llama 2's RLHF V1…V5).

Rounds of rejection sampling, each starting from the previous round's model and competing with the pools
of all earlier rounds, then PPO from the last round's checkpoint (the paper's V5 ordering). Every round
keeps its directory (``round_01/`` with samples, pool, report and ``model/``); a finished round is marked
by its ``report.json`` plus ``model/``, so a rerun of the same command skips finished rounds and resumes
at the first unfinished one (PPO resumes from its own checkpoints).

The ``rejection_sampling`` and ``ppo`` sections take any key of those stages' configs except the ones the
driver sets (model, tokenizer, output, prompts, reward, round, previous_pools).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..config import from_dict, to_dict, write_resolved_config
from ..errors import UserError
from ..io import read_json, write_json
from .ppo import PPOConfig
from .ppo import run as run_ppo
from .rejection_sampling import RejectionSamplingConfig
from .rejection_sampling import run as run_rejection_sampling
from .rewards import RewardConfig

log = logging.getLogger(__name__)

DRIVER_KEYS = ("model", "tokenizer", "output", "prompts", "reward", "round", "previous_pools", "default_lang")


@dataclass
class RLHFConfig:
    model: str = ""
    """Starting chat checkpoint (the SFT model)."""
    tokenizer: str = ""
    """Tokenizer directory (default: the model directory)."""
    output: str = ""
    """Run directory: round_NN/ per rejection-sampling round, ppo/, summary.json."""
    prompts: list[str] = field(default_factory=list)
    """Prompt files (JSONL/Parquet globs) for every round, with optional 'lang', 'id', 'safety'."""
    default_lang: str = "en"
    """Language of prompt records without a 'lang' field."""
    rounds: int = 4
    """Rejection-sampling rounds before PPO (Llama 2: V1–V4)."""
    ppo: bool = True
    """Run PPO from the last round's checkpoint (Llama 2's V5)."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    rejection_sampling: dict = field(default_factory=dict)
    """Settings of every rejection-sampling round, e.g. {samples_per_prompt: 10, sampling: {temperature: 1.2}, sft: {...}}."""
    ppo_settings: dict = field(default_factory=dict)
    """Settings of the PPO stage, e.g. {steps: 200, kl_beta: 0.01, eval_prompts: [...]}."""

    def __post_init__(self):
        for key in ("model", "output"):
            if not getattr(self, key):
                raise UserError(f"key '{key}' is required")
        if not self.prompts:
            raise UserError("key 'prompts' is empty; give JSONL/Parquet prompt files")
        if self.rounds < 0 or (self.rounds == 0 and not self.ppo):
            raise UserError(f"key 'rounds' is {self.rounds} and ppo is {self.ppo}: nothing to run")
        for section, settings in (("rejection_sampling", self.rejection_sampling), ("ppo_settings", self.ppo_settings)):
            clash = [k for k in settings if k in DRIVER_KEYS]
            if clash:
                raise UserError(f"key '{section}.{clash[0]}' is set by the driver; set it at the top level instead")
        if self.rejection_sampling.get("finetune") is False:
            raise UserError("key 'rejection_sampling.finetune' is false, but every round trains the next round's model")
        # Validate the sections now, not hours later when the round that uses them starts.
        self.round_config(1, self.model, [])
        self.ppo_config(self.model)

    def _shared(self, model: str) -> dict:
        return {"model": model, "tokenizer": self.tokenizer or self.model, "prompts": list(self.prompts),
                "default_lang": self.default_lang, "reward": to_dict(self.reward)}

    def round_config(self, round_no: int, model: str, pools: list[str]) -> RejectionSamplingConfig:
        data = {**self.rejection_sampling, **self._shared(model), "round": round_no, "previous_pools": pools,
                "output": str(Path(self.output) / f"round_{round_no:02d}")}
        return from_dict(RejectionSamplingConfig, data, where="key 'rejection_sampling'")

    def ppo_config(self, model: str) -> PPOConfig:
        data = {**self.ppo_settings, **self._shared(model), "reference": self.ppo_settings.get("reference") or model,
                "output": str(Path(self.output) / "ppo")}
        return from_dict(PPOConfig, data, where="key 'ppo_settings'")


def _finished(round_dir: Path) -> bool:
    return (round_dir / "report.json").is_file() and (round_dir / "model" / "config.json").is_file()


def run(cfg: RLHFConfig) -> dict:
    output = Path(cfg.output)
    output.mkdir(parents=True, exist_ok=True)
    write_resolved_config(cfg, output, "rlhf")
    model, pools, rounds = cfg.model, [], []
    for round_no in range(1, cfg.rounds + 1):
        round_cfg = cfg.round_config(round_no, model, list(pools))
        round_dir = Path(round_cfg.output)
        if _finished(round_dir):
            log.info("rlhf: round %d already finished in %s; skipping", round_no, round_dir)
            report = read_json(round_dir / "report.json")
        else:
            log.info("rlhf: round %d of %d: rejection sampling from %s", round_no, cfg.rounds, model)
            report = run_rejection_sampling(round_cfg)
        rounds.append({"round": round_no, "model": str(round_dir / "model"), "all": report["all"],
                       "languages": {lang: {k: s[k] for k in ("mean_reward", "mean_best_of_k", "pool_mean_reward")}
                                     for lang, s in report["languages"].items()}})
        pools = [str(round_dir / "pool.jsonl")]  # each pool already holds the best of all earlier rounds
        model = str(round_dir / "model")
    summary: dict = {"rounds": rounds, "model": model}
    if cfg.ppo:
        log.info("rlhf: PPO from %s", model)
        ppo_summary = run_ppo(cfg.ppo_config(model))
        summary["ppo"] = {k: ppo_summary[k] for k in ("steps", "best_step", "best_eval_reward", "stopped_early", "kl_beta",
                                                      "first", "last")}
        summary["model"] = ppo_summary["output"]
    write_json(output / "summary.json", summary)
    return summary
