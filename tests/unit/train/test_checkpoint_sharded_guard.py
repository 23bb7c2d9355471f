"""A sharded (FSDP2) training checkpoint resumed without FSDP is a one-line error, not a traceback."""

from __future__ import annotations

import json

import pytest
import torch

from polyglot_llama.errors import UserError
from polyglot_llama.train import checkpointing


def test_a_sharded_checkpoint_needs_the_sharded_model(tmp_path):
    step = tmp_path / "checkpoints" / "step_00000002"
    (step / "sharded").mkdir(parents=True)
    (step / "state.json").write_text(json.dumps({"step": 2, "history": []}))
    model = torch.nn.Linear(2, 2)
    with pytest.raises(UserError) as error:
        checkpointing.load(step, model, torch.optim.AdamW(model.parameters()))
    assert str(error.value) == (f"{step}: a sharded (FSDP2) checkpoint; resume it under the FSDP launch config "
                                "that wrote it")
