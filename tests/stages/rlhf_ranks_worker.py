"""Run by tests/stages/test_rlhf_processes.py under torchrun: two PPO steps and one rejection-sampling
round (no fine-tune) into OUT, with whatever number of processes torchrun starts; the frozen models (PPO's
reference, rejection sampling's sampling policy) are sharded over the ranks.

    ACCELERATE_USE_CPU=true torchrun --standalone --nproc_per_node 2 tests/stages/rlhf_ranks_worker.py OUT MODEL PROMPTS
"""

from __future__ import annotations

import sys

import torch

from polyglot_llama.config import from_dict
from polyglot_llama.rlhf.ppo import PPOConfig
from polyglot_llama.rlhf.ppo import run as run_ppo
from polyglot_llama.rlhf.rejection_sampling import RejectionSamplingConfig
from polyglot_llama.rlhf.rejection_sampling import run as run_rs


def main(out: str, model: str, prompts: str) -> None:
    torch.set_num_threads(1)
    sampling = {"temperature": 1.0, "max_new_tokens": 6, "batch_size": 4, "backend": "hf"}
    run_ppo(from_dict(PPOConfig, {
        "model": model, "output": f"{out}/ppo", "prompts": [prompts], "eval_fraction": 0.0, "reward": {"kind": "target_script"},
        "reward_shaping": "whiten", "value_model": "separate", "sampling": sampling, "steps": 2, "batch_size": 8,
        "mini_batch_size": 4, "micro_batch_size": 2, "kl_beta": 0.05, "optim": {"lr": 1e-2}, "eval_every": 0, "save_every": 0,
        "frozen_placement": "shard",  # the reference split over the ranks (one process: whole)
    }))
    run_rs(from_dict(RejectionSamplingConfig, {
        "model": model, "output": f"{out}/rs", "prompts": [prompts], "samples_per_prompt": 3, "sampling": sampling,
        "reward": {"kind": "target_script"}, "finetune": False,
        "frozen_placement": "shard",  # the sampling policy split over the ranks (one process: whole)
    }))


if __name__ == "__main__":
    main(*sys.argv[1:4])
