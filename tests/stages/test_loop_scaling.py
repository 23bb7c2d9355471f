"""The loop at scale: per-token normalisation across accumulation and processes, DDP on 2 CPU processes
(gloo), new-row freezing and resume under DDP, the learning-rate schedule read back from metrics.jsonl.

Run as a script under torchrun, this file is the 2-process worker: ``torchrun --nproc_per_node 2
test_loop_scaling.py MODEL OUT`` writes each scenario's weights and history to OUT for the tests to compare.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import torch

from polyglot_llama.train import checkpointing
from polyglot_llama.train.data import causal_lm_step, collate_packed
from polyglot_llama.train.freezing import TrainStageConfig, prepare_stage
from polyglot_llama.train.loop import LoopConfig, OptimConfig, ScheduleConfig, train

IGNORE = -100
NEW_IDS = list(range(500, 512))  # the "new" rows of the new-rows stage: the last 12 of 512


def make_rows(label_counts: list[int], seq_len: int = 16) -> list[dict]:
    """Rows of random ids whose last ``c`` next-token targets carry a loss (answer-only SFT style)."""
    generator = torch.Generator().manual_seed(0)
    rows = []
    for count in label_counts:
        ids = torch.randint(3, 512, (seq_len,), generator=generator).tolist()
        labels = [IGNORE] * (seq_len - count) + ids[seq_len - count:]
        rows.append({"input_ids": ids, "labels": labels, "position_ids": list(range(seq_len))})
    return rows


def run_train(model_dir, out, rows, micro: int, accum: int, steps: int, *, stage: str = "all", save_every: int = 0,
              lr: float = 1.0, eps: float = 1.0, clip: float = 0.0, warmup: int = 0) -> dict:
    from polyglot_llama.model.checkpoint import load_causal_lm

    torch.manual_seed(0)
    model = load_causal_lm(model_dir)
    plan = prepare_stage(model, TrainStageConfig(trainable=stage), NEW_IDS)
    # eps = 1 makes AdamW's first update ≈ lr·g (not lr·sign(g)), so the weights show the gradient's size.
    result = train(plan.model, rows, collate_packed, causal_lm_step, out,
                   loop=LoopConfig(max_steps=steps, micro_batch_size=micro, grad_accum=accum, log_every=1,
                                   save_every=save_every, seed=1),
                   optim=OptimConfig(lr=lr, eps=eps, grad_clip=clip, weight_decay=0.1),
                   schedule=ScheduleConfig(kind="constant", warmup_steps=warmup),
                   params=plan.params, after_optimizer_step=plan.after_optimizer_step,
                   before_optimizer_step=plan.before_optimizer_step)
    result["model"] = plan.finish(result["model"])
    return result


class _Killed(Exception):
    pass


def killed_after_first_save(run) -> None:
    """Call ``run()`` with the loop's checkpoint save raising right after it wrote its files (a kill -9 at
    that point leaves the same directory), then put the real save back."""
    real_save = checkpointing.save

    def save_then_die(*args, **kwargs):
        path = real_save(*args, **kwargs)
        raise _Killed(path)

    checkpointing.save = save_then_die
    try:
        run()
    except _Killed:
        pass
    finally:
        checkpointing.save = real_save


def killed_and_resumed(model_dir, out, rows, micro: int, accum: int) -> list[float]:
    """4 steps, killed right after the step-2 checkpoint, then resumed: the logged losses of steps 1-4."""
    killed_after_first_save(lambda: run_train(model_dir, out, rows, micro, accum, 4, save_every=2, lr=1e-2, eps=1e-8, clip=1.0))
    run_train(model_dir, out, rows, micro, accum, 4, save_every=2, lr=1e-2, eps=1e-8, clip=1.0)
    return [json.loads(line)["loss"] for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]


def fsdp2_run(model_dir, rows, world: int, *, stage: str = "new_embeddings", steps: int = 3, out: Path | None = None,
              save_every: int = 0) -> dict:
    """A stage by hand on a model sharded with torch's FSDP2 (``fully_shard`` per decoder layer and at the
    root) when ``world`` > 1, unsharded otherwise. accelerate selects FSDP only on accelerator devices, so
    this drives the loop's pieces directly: the chunked LM step, the freezing plan (gradient mask and row
    restore on row-sharded DTensors), clipping of the parameters looked up by name after sharding, and the
    loop's checkpointing (``checkpointing.save``/``load``: per-rank shards with torch.distributed.checkpoint),
    resuming from the newest checkpoint in ``out`` if there is one."""
    from accelerate import Accelerator

    from polyglot_llama.model.checkpoint import load_causal_lm

    torch.manual_seed(0)
    model = load_causal_lm(model_dir)
    plan = prepare_stage(model, TrainStageConfig(trainable=stage), NEW_IDS)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    rank = 0
    if world > 1:
        import torch.distributed as dist
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
        from torch.distributed.fsdp import fully_shard

        rank = dist.get_rank()
        for layer in model.model.layers:
            fully_shard(layer)
        fully_shard(model)
    params = [p for n, p in model.named_parameters() if n in names]  # the sharded tensors, by name
    optimizer = torch.optim.AdamW(params, lr=1e-2, eps=1e-8, weight_decay=0.1)
    start, history = 0, []
    latest = checkpointing.latest(out) if out is not None else None
    if latest is not None:
        # The sharded path needs the accelerator (its ranks); one process resumes an unprepared model.
        state = checkpointing.load(latest, model, optimizer, accelerator=Accelerator(cpu=True) if world > 1 else None)
        start, history = state["step"], state["history"]
    for step in range(start, steps):
        mine = rows[2 * step:2 * step + 2][rank::world]  # rank r reads row r of the step's two
        batch = collate_packed(mine)
        units = sum(int((row_labels[1:] != IGNORE).sum()) for row_labels in batch["labels"])
        total = torch.tensor([float(units)])
        if world > 1:
            dist.all_reduce(total)
        out_step = causal_lm_step(model, batch)
        (out_step.loss * out_step.n_tokens * world / total).backward()  # FSDP2 averages over ranks: × world
        if plan.before_optimizer_step is not None:
            plan.before_optimizer_step(model)
        norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad()
        if plan.after_optimizer_step is not None:
            plan.after_optimizer_step(model)
        loss = torch.tensor([float(out_step.loss.detach()) * out_step.n_tokens])
        if world > 1:
            dist.all_reduce(loss)
        history.append({"loss": float(loss / total),
                        "grad_norm": float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)})
        if save_every and (step + 1) % save_every == 0:
            checkpointing.save(out, step + 1, model, optimizer, history, Accelerator(cpu=True), keep=2)
    if world > 1:
        state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    else:
        state = model.state_dict()
    return {"weights": {k: v.detach().clone() for k, v in state.items()}, "losses": [h["loss"] for h in history],
            "grad_norms": [h["grad_norm"] for h in history]}


def fsdp2_killed_and_resumed(model_dir, out: Path, rows, world: int) -> dict:
    """4 steps of a full-parameter stage, killed right after the step-2 checkpoint, then resumed."""
    killed_after_first_save(lambda: fsdp2_run(model_dir, rows, world, stage="all", steps=4, out=out, save_every=2))
    return fsdp2_run(model_dir, rows, world, stage="all", steps=4, out=out, save_every=2)


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def scenarios(model_dir, out: Path, world: int) -> dict:
    """Every comparison, run with the micro-batch/accumulation that gives the same global batch on ``world``
    processes: {name: (weights, history)} for the tests."""
    out.mkdir(parents=True, exist_ok=True)
    accum = 2 // world
    results = {}
    # One process reads both examples in one micro-batch; two read one each (DDP used to average their means).
    norm = run_train(model_dir, out / "norm", make_rows([2, 11]), micro=2 // world, accum=1, steps=1)
    results["norm"] = (_state(norm["model"]), norm["history"])
    rows = make_rows([2, 11, 15, 5, 9, 1, 14, 7])
    stage = run_train(model_dir, out / "new_rows", rows, micro=1, accum=accum, steps=3, stage="new_embeddings",
                      lr=1e-2, eps=1e-8, clip=1.0)
    results["new_rows"] = (_state(stage["model"]), stage["history"])
    full = run_train(model_dir, out / "full", rows, micro=1, accum=accum, steps=4, lr=1e-2, eps=1e-8, clip=1.0)
    results["full"] = (_state(full["model"]), full["history"])
    results["resumed_losses"] = killed_and_resumed(model_dir, out / "resumed", rows, micro=1, accum=accum)
    results["fsdp2_new_rows"] = fsdp2_run(model_dir, rows, world)
    results["fsdp2_full"] = fsdp2_run(model_dir, rows, world, stage="all", steps=4)
    results["fsdp2_resumed"] = fsdp2_killed_and_resumed(model_dir, out / "fsdp2_resumed", rows, world)
    return results


def worker() -> None:
    model_dir, out = sys.argv[1], Path(sys.argv[2])
    results = scenarios(model_dir, out, world=int(os.environ["WORLD_SIZE"]))
    if int(os.environ["RANK"]) == 0:
        torch.save(results, out / "results.pt")


# ------------------------------------------------------------------------------------------------ tests


def _full_logits_loss(model_dir, rows) -> float:
    """Token-weighted next-token loss of ``rows`` under the untrained model, by the textbook formula."""
    from polyglot_llama.model.checkpoint import load_causal_lm

    model = load_causal_lm(model_dir)
    batch = collate_packed(rows)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits.double()
    targets = batch["labels"][:, 1:]
    logp = torch.log_softmax(logits[:, :-1], dim=-1)
    mask = targets != IGNORE
    picked = logp.gather(-1, targets.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return float(-(picked * mask).sum() / mask.sum())


def test_one_step_is_per_token_whatever_the_micro_batch_and_accumulation(en_model_dir, tmp_path):
    rows = make_rows([2, 11])  # a 2-token and an 11-token answer must weigh 2 : 11
    one_by_two = run_train(en_model_dir, tmp_path / "a", rows, micro=1, accum=2, steps=1)
    two_by_one = run_train(en_model_dir, tmp_path / "b", rows, micro=2, accum=1, steps=1)
    a, b = _state(one_by_two["model"]), _state(two_by_one["model"])
    moved = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert moved < 1e-6, moved
    from polyglot_llama.model.checkpoint import load_causal_lm

    init = _state(load_causal_lm(en_model_dir))
    assert max(float((a[k] - init[k]).abs().max()) for k in a) > 1e-3  # the step did move the weights
    # The logged training loss is the token-weighted mean, as the validation loss: (2·l₂ + 11·l₁₁) / 13.
    expected = _full_logits_loss(en_model_dir, rows)
    for result in (one_by_two, two_by_one):
        assert abs(result["history"][0]["loss"] - expected) < 1e-5
        assert result["history"][0]["units"] == 13


def test_two_processes_equal_one(en_model_dir, tmp_path):
    """DDP on 2 CPU processes: the same weights after a per-token step, the same losses and (positive) grad
    norms, old embedding rows bit-identical after a new-rows stage, and a killed run resuming exactly.
    FSDP2 (fully_shard, gloo): the same losses and grad norms, old rows bit-identical after a new-rows stage."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29541"]
    done = subprocess.run([*torchrun, __file__, str(en_model_dir), str(tmp_path / "two")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    two = torch.load(tmp_path / "two" / "results.pt", weights_only=True)
    one = scenarios(en_model_dir, tmp_path / "one", world=1)

    for name in ("norm", "new_rows", "full"):
        w1, w2 = one[name][0], two[name][0]
        assert max(float((w1[k] - w2[k]).abs().max()) for k in w1) < 1e-6, name
        for r1, r2 in zip(one[name][1], two[name][1]):
            assert abs(r1["loss"] - r2["loss"]) < 1e-6 and r1["units"] == r2["units"], name
            if "grad_norm" in r1:
                assert r1["grad_norm"] > 0 and abs(r1["grad_norm"] - r2["grad_norm"]) < 1e-6, name

    from polyglot_llama.model.checkpoint import load_causal_lm

    init = _state(load_causal_lm(en_model_dir))
    old = [i for i in range(512) if i not in NEW_IDS]
    for weights in (one["new_rows"][0], two["new_rows"][0]):
        for key in ("model.embed_tokens.weight", "lm_head.weight"):
            if key in weights:
                assert torch.equal(weights[key][old], init[key][old]), key
                assert not torch.equal(weights[key][NEW_IDS], init[key][NEW_IDS]), key
        body = [k for k in weights if "embed_tokens" not in k and "lm_head" not in k]
        assert all(torch.equal(weights[k], init[k]) for k in body)

    sharded, plain = two["fsdp2_new_rows"], one["fsdp2_new_rows"]
    assert max(abs(a - b) for a, b in zip(sharded["losses"], plain["losses"])) < 1e-6
    assert all(n > 0 for n in sharded["grad_norms"])
    assert max(abs(a - b) for a, b in zip(sharded["grad_norms"], plain["grad_norms"])) < 1e-6
    for key in ("model.embed_tokens.weight", "lm_head.weight"):
        weights = sharded["weights"][key]
        assert torch.equal(weights[old], init[key][old]), key  # bit-identical on both shards
        assert torch.allclose(weights[NEW_IDS], plain["weights"][key][NEW_IDS], atol=1e-6), key
        assert not torch.equal(weights[NEW_IDS], init[key][NEW_IDS]), key

    # FSDP2 kill -> resume through the loop's checkpointing (per-rank DCP shards of weights and AdamW states):
    # the resumed run's steps 3-4 repeat the uninterrupted run's losses and weights.
    assert (tmp_path / "two" / "fsdp2_resumed" / "checkpoints" / "step_00000004" / "sharded" / ".metadata").is_file()
    for result in (two, one):
        resumed, full = result["fsdp2_resumed"], result["fsdp2_full"]
        assert len(resumed["losses"]) == len(full["losses"]) == 4
        assert max(abs(a - b) for a, b in zip(resumed["losses"], full["losses"])) < 1e-6
        assert all(n > 0 for n in resumed["grad_norms"])
        assert max(float((resumed["weights"][k] - full["weights"][k]).abs().max()) for k in full["weights"]) < 1e-6
    assert max(abs(a - b) for a, b in zip(two["fsdp2_full"]["losses"], one["fsdp2_full"]["losses"])) < 1e-6

    full_losses = [r["loss"] for r in one["full"][1]]
    assert len(two["resumed_losses"]) == len(one["resumed_losses"]) == 4
    assert max(abs(a - b) for a, b in zip(two["resumed_losses"], full_losses)) < 1e-6
    assert max(abs(a - b) for a, b in zip(one["resumed_losses"], full_losses)) < 1e-6


def test_learning_rate_sequence_is_read_back_from_metrics(en_model_dir, tmp_path):
    """The loop applies the schedule: lr per step from metrics.jsonl, warm-up capped at 10 % of 20 steps."""
    from polyglot_llama.model.checkpoint import load_causal_lm

    rows = make_rows([3] * 4)
    out = tmp_path / "lr"
    train(load_causal_lm(en_model_dir), rows, collate_packed, causal_lm_step, out,
          loop=LoopConfig(max_steps=20, micro_batch_size=2, log_every=1),
          optim=OptimConfig(lr=1e-3), schedule=ScheduleConfig(kind="cosine", warmup_steps=2000, final_lr_ratio=0.1))
    lrs = [json.loads(line)["lr"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    # warm-up 2 steps (2000 capped to 10 % of 20), then cosine from 1e-3 to 1e-4 over the remaining 18.
    expected = [0.5e-3, 1e-3] + [1e-4 + 0.9e-3 * 0.5 * (1 + math.cos(math.pi * k / 18)) for k in range(18)]
    assert len(lrs) == 20
    assert all(abs(got - want) < 1e-12 for got, want in zip(lrs, expected)), lrs


def test_the_loop_trains_with_the_lean_mlp(en_model_dir, tmp_path):
    """The loop switches the model's SwiGLU MLPs to the variant that keeps 2 fewer [N, F] activations."""
    from polyglot_llama.model.checkpoint import load_causal_lm
    from polyglot_llama.train.swiglu import _lean_forward

    result = train(load_causal_lm(en_model_dir), make_rows([3] * 2), collate_packed, causal_lm_step, tmp_path / "lean",
                   loop=LoopConfig(max_steps=1, micro_batch_size=2), optim=OptimConfig(), schedule=ScheduleConfig())
    layers = result["model"].model.layers
    assert len(layers) > 0 and all(layer.mlp.forward.__func__ is _lean_forward for layer in layers)


if __name__ == "__main__":
    worker()
