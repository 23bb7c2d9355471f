"""The GPU check's worker (run by bench/gpu_check.sh): bf16 pretraining of the ~1B preset through the loop.

    python bench/gpu_check.py prepare WORK [--preset 1b] [--seq-len 2048] [--rows 2048]
    accelerate launch --config_file CFG bench/gpu_check.py train WORK NAME [--steps 20] [--micro 8] [--new-rows]
    python bench/gpu_check.py report WORK

``prepare`` writes one random-init model (Llama-2 vocabulary 32000) and rows of random token ids (throughput
and parity do not depend on the text). ``train`` runs `train.loop.train` on them and writes WORK/NAME.json:
losses, grad norms, MFU and tokens/s per step, peak GPU memory, and for ``--new-rows`` whether every old
embedding/LM-head row is bit-identical to the start. ``report`` prints the table and the verdicts; its exit
status is 1 if a check fails. On a CPU machine ``--preset tiny`` runs the same path (no MFU, no FSDP).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

from _checkout import use_checkout

use_checkout()

VOCAB = 32000
NEW_ROWS = 1000  # the last 1000 ids play the tokens added by `model extend`


def prepare(work: Path, preset: str, seq_len: int, rows: int) -> None:
    from transformers import LlamaForCausalLM

    from polyglot_llama.model.presets import preset_config

    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    config = preset_config(preset, vocab_size=VOCAB, max_position_embeddings=max(seq_len, 512))
    model = LlamaForCausalLM(config)
    model.save_pretrained(work / "init")
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, VOCAB, (rows, seq_len), generator=generator)
    torch.save({"input_ids": ids}, work / "rows.pt")
    print(f"prepared {preset}: {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters, "
          f"{rows} rows × {seq_len} tokens in {work}")


def _rows(work: Path) -> list[dict]:
    ids = torch.load(work / "rows.pt", weights_only=True)["input_ids"]
    positions = list(range(ids.shape[1]))
    return [{"input_ids": row, "labels": row, "position_ids": positions} for row in ids.tolist()]


def train_run(work: Path, name: str, steps: int, micro: int, new_rows: bool) -> None:
    from polyglot_llama.model.checkpoint import load_causal_lm
    from polyglot_llama.train import checkpointing
    from polyglot_llama.train.data import causal_lm_step, collate_packed
    from polyglot_llama.train.freezing import TrainStageConfig, prepare_stage
    from polyglot_llama.train.loop import LoopConfig, OptimConfig, ScheduleConfig, distributed_state, train

    state = distributed_state()
    model = load_causal_lm(work / "init")
    vocab = model.get_input_embeddings().weight.shape[0]
    new_ids = list(range(vocab - NEW_ROWS, vocab))
    plan = prepare_stage(model, TrainStageConfig(trainable="new_embeddings" if new_rows else "all"), new_ids)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    result = train(plan.model, _rows(work), collate_packed, causal_lm_step, work / "runs" / name,
                   loop=LoopConfig(max_steps=steps, micro_batch_size=micro, log_every=1, resume=False),
                   optim=OptimConfig(lr=3e-4 if not new_rows else 1e-3), schedule=ScheduleConfig(warmup_steps=2),
                   params=plan.params, after_optimizer_step=plan.after_optimizer_step,
                   before_optimizer_step=plan.before_optimizer_step)
    history = result["history"]
    record = {
        "name": name, "processes": state.num_processes, "steps": steps, "micro_batch_size": micro,
        "loss": [h["loss"] for h in history], "grad_norm": [h.get("grad_norm") for h in history],
        "tokens_per_second": [h["tokens_per_second"] for h in history], "mfu": [h.get("mfu") for h in history],
        "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
    }
    if new_rows:
        trained = checkpointing.full_state_dict(result["model"]) or result["model"].state_dict()  # collective
        if state.is_main_process:
            start = load_causal_lm(work / "init").state_dict()
            old = torch.ones(vocab, dtype=torch.bool)
            old[new_ids] = False
            checks = {}
            for key in ("model.embed_tokens.weight", "lm_head.weight"):
                if key in start and key in trained:
                    after = trained[key].detach().cpu().to(start[key].dtype)
                    checks[key] = {"old_rows_identical": bool(torch.equal(after[old], start[key][old])),
                                   "new_rows_changed": not torch.equal(after[~old], start[key][~old])}
            record["new_rows"] = checks
    if state.is_main_process:
        (work / f"{name}.json").write_text(json.dumps(record, indent=1))
        print(json.dumps({k: v for k, v in record.items() if k in ("name", "peak_memory_gb", "new_rows")}))


def report(work: Path) -> int:
    runs = {p.stem: json.loads(p.read_text()) for p in sorted(work.glob("*.json"))}
    failures = []
    print("| run | processes | device | tokens/s (median, after step 3) | MFU | peak memory (GB) | final loss |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for name, r in runs.items():
        tps = statistics.median(r["tokens_per_second"][3:] or r["tokens_per_second"])
        mfus = [m for m in r["mfu"][3:] if m is not None]
        mfu = statistics.median(mfus) if mfus else None
        peak = f"{r['peak_memory_gb']:.1f}" if r["peak_memory_gb"] is not None else "n/a"
        print(f"| {name} | {r['processes']} | {r['device']} | {tps:.0f} | {f'{100 * mfu:.1f} %' if mfu else 'n/a'} | {peak} | {r['loss'][-1]:.4f} |")
        if name == "fsdp" and mfu is not None and mfu < 0.40:
            failures.append(f"FSDP2 MFU {100 * mfu:.1f} % < 40 %")
    if "fsdp" in runs and "ddp" in runs:
        a, b = runs["fsdp"]["loss"], runs["ddp"]["loss"]
        worst = max(abs(x - y) / abs(y) for x, y in zip(a, b))
        print(f"loss parity FSDP2 vs DDP over {len(a)} steps: max relative difference {worst:.2e} (bf16: must be < 2e-2)")
        if worst >= 2e-2:
            failures.append(f"FSDP2 and DDP losses differ by {worst:.2e}")
        norms = runs["fsdp"]["grad_norm"]
        if not all(n is not None and n > 0 for n in norms):
            failures.append(f"FSDP2 grad norms not all positive: {norms[:5]}")
    for name, r in runs.items():
        for key, check in r.get("new_rows", {}).items():
            print(f"{name} new-rows stage, {key}: old rows bit-identical {check['old_rows_identical']}, "
                  f"new rows changed {check['new_rows_changed']}")
            if not (check["old_rows_identical"] and check["new_rows_changed"]):
                failures.append(f"{name}: new-rows stage {key} {check}")
    print("GPU check: " + ("PASS" if not failures else "FAIL: " + "; ".join(failures)))
    return 1 if failures else 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["prepare", "train", "report"])
    parser.add_argument("work", type=Path)
    parser.add_argument("name", nargs="?", default="run")
    parser.add_argument("--preset", default="1b")
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--rows", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--micro", type=int, default=8)
    parser.add_argument("--new-rows", action="store_true")
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.work, args.preset, args.seq_len, args.rows)
    elif args.command == "train":
        train_run(args.work, args.name, args.steps, args.micro, args.new_rows)
    else:
        sys.exit(report(args.work))


if __name__ == "__main__":
    main()
