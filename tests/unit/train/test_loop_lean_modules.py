"""The loop trains with the lean MLP and norms, its forward runs where norm outputs are remade, and on CPU it
trims the C heap before every forward and backward."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from polyglot_llama.train import loop as loop_module
from polyglot_llama.train import rmsnorm
from polyglot_llama.train.data import causal_lm_step, collate_packed
from polyglot_llama.train.loop import LoopConfig, OptimConfig, ScheduleConfig, train


def test_loop_switches_the_memory_savers_on(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=1))
    rows = [{"input_ids": list(range(i, i + 8)), "labels": list(range(i, i + 8)), "position_ids": list(range(8))}
            for i in range(4)]
    remade, trims = [], []
    monkeypatch.setattr(loop_module, "release_free_heap", lambda: trims.append(len(remade)))

    def step(m, batch):
        out = causal_lm_step(m, batch)
        remade.append(rmsnorm._outputs is not None)  # inside the loop's recompute context
        return out

    train(model, rows, collate_packed, step, tmp_path, loop=LoopConfig(max_steps=1, micro_batch_size=1, grad_accum=2, resume=False),
          optim=OptimConfig(), schedule=ScheduleConfig(warmup_steps=1))
    norms = [m for m in model.modules() if type(m).__name__ == "LlamaRMSNorm"]
    mlps = [m for m in model.modules() if type(m).__name__ == "LlamaMLP"]
    assert len(norms) == 5 and all(vars(m)["forward"].__func__ is rmsnorm._scale_forward for m in norms)
    assert len(mlps) == 2 and all("forward" in vars(m) for m in mlps)
    assert remade == [True, True]
    assert trims == [0, 1, 1, 2]  # before each micro-batch's forward (0, 1 done) and backward (1, 2 done)
