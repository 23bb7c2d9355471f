"""A training checkpoint is written from the model's own memory: no second copy of the weights."""

from __future__ import annotations

import torch

from polyglot_llama.model.checkpoint import load_causal_lm
from polyglot_llama.train import checkpointing


def test_checkpoint_writes_the_parameters_without_copying_them(en_model_dir, tmp_path, monkeypatch):
    from accelerate import Accelerator

    model = load_causal_lm(en_model_dir)
    written = {}
    real_save_file = checkpointing.save_file

    def recording_save_file(tensors, path, *args, **kwargs):
        written.update({k: v.data_ptr() for k, v in tensors.items()})
        return real_save_file(tensors, path, *args, **kwargs)

    monkeypatch.setattr(checkpointing, "save_file", recording_save_file)
    path = checkpointing.save(tmp_path / "run", 1, model, torch.optim.AdamW(model.parameters()), [],
                              Accelerator(cpu=True), keep=1)
    params = dict(model.named_parameters())
    assert written and set(written) <= set(model.state_dict())
    # A 7B fp32 model would otherwise hold 28 GB more while it saves.
    assert all(written[name] == params[name].data_ptr() for name in written if name in params)
    assert (path / "model.safetensors").is_file()
