"""Fixtures for the evaluation tests (helpers shared by them live in eval_helpers.py)."""

from __future__ import annotations

import pytest

from polyglot_llama.evaluation.checkpoints import Checkpoint
from polyglot_llama.evaluation.lm import Runtime


@pytest.fixture(scope="session")
def tiny_checkpoint(multi_model_dir) -> Checkpoint:
    """The untrained tiny Llama of conftest as an eval checkpoint (fp32, CPU, small batches to exercise padding)."""
    return Checkpoint(str(multi_model_dir), "tiny", Runtime(device="cpu", dtype="float32", batch_size=3))


@pytest.fixture(scope="session")
def tiny_rm_dir(tmp_path_factory, multi_model_dir):
    """An (untrained) reward model built from the tiny model: a scalar head on the same body."""
    from polyglot_llama.model.checkpoint import save_checkpoint
    from polyglot_llama.model.reward_model import build_reward_model

    out = tmp_path_factory.mktemp("tiny_rm") / "rm"
    save_checkpoint(build_reward_model(multi_model_dir, seed=3), out, tokenizer_dir=multi_model_dir)
    return out
