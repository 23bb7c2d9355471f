"""Iterative RLHF: generation, rejection sampling, PPO, safety context distillation and the round driver."""
