"""DPO training throughput and peak memory: `polyglot-llama dpo`'s reference pass + loop vs TRL's `DPOTrainer`.

Both start from the same policy and reference (the same fresh Llama; reference == policy, as by default)
and train one epoch over the same pairs (prompt and chosen answer in one language, rejected answer in
another, lengths varying 20-`--window` characters) with the same batch, optimiser (AdamW β 0.9/0.95,
eps 1e-5, no weight decay, clip 1.0, constant lr after 5 warm-up steps), β 0.1 and precision (fp32 on CPU,
bf16 autocast on a bf16 GPU). TRL runs in its default mode (the reference model forward every step);
`--trl-precompute` adds TRL with `precompute_ref_log_probs=True` as a second baseline.

Ours is timed from the reference pass (it is part of the cost) to the end of the loop; TRL from
`trainer.train()` to its return (its tokenisation happens before, untimed, as ours does). Each side runs in
its own subprocess, so its peak memory (GPU: max allocated; CPU: peak RSS) is its own. Tokens counted are
the real (non-padding) tokens of the pairs trained on, the same number for every side. Prints tokens/s,
peak memory and the ratio ours / TRL.

    python bench/bench_dpo.py [--preset small] [--pairs 512] [--batch 16] [--window 300] [--trl-precompute]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from _checkout import use_checkout

use_checkout()

SAMPLE = Path(__file__).resolve().parents[1] / "polyglot_llama" / "resources" / "sample_text"
LANGS = ("en", "de", "ko", "zh")


def write_pairs(path: Path, n: int, window: int, seed: int) -> None:
    rng = random.Random(seed)
    texts = {lang: [json.loads(line)["text"] for line in (SAMPLE / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines()]
             for lang in LANGS}

    def snippet(lang: str) -> str:
        text, size = rng.choice(texts[lang]), rng.randint(20, window)
        start = rng.randrange(0, max(1, len(text) - size))
        return text[start:start + size].strip()

    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            lang = rng.choice(LANGS)
            other = rng.choice([m for m in LANGS if m != lang])
            f.write(json.dumps({"prompt": snippet(lang), "chosen": snippet(lang), "rejected": snippet(other), "lang": lang},
                               ensure_ascii=False) + "\n")


def setup(work: Path, args) -> None:
    from polyglot_llama.chat import install_chat_template
    from polyglot_llama.model.init import ModelInitConfig
    from polyglot_llama.model.init import run as init_model
    from polyglot_llama.tokenizer.train import save_tokenizer_dir, train_llama_tokenizer

    texts = [json.loads(line)["text"] for lang in LANGS for line in (SAMPLE / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines()]
    save_tokenizer_dir(train_llama_tokenizer(texts, args.vocab), work / "model")
    init_model(ModelInitConfig(tokenizer=str(work / "model"), output=str(work / "model"), preset=args.preset, seed=0))
    install_chat_template(work / "model")
    write_pairs(work / "pairs.jsonl", args.pairs, args.window, seed=0)


def _examples(work: Path):
    from polyglot_llama.io import RejectCounter
    from polyglot_llama.model.checkpoint import load_tokenizer
    from polyglot_llama.train import dpo_data
    from polyglot_llama.train.reward_data import load_pairs

    tokenizer = load_tokenizer(work / "model")
    pairs = load_pairs([str(work / "pairs.jsonl")], RejectCounter())
    return tokenizer, dpo_data.encode_pairs(pairs, tokenizer, None, 100_000, "small", RejectCounter())


def run_ours(work: Path, args) -> tuple[float, float]:
    from functools import partial

    from polyglot_llama.model.checkpoint import load_causal_lm
    from polyglot_llama.train import dpo_data
    from polyglot_llama.train.dpo import DPOConfig, DPODataConfig, dpo_step, reference_pass
    from polyglot_llama.train.loop import LoopConfig, OptimConfig, ScheduleConfig, train

    tokenizer, examples = _examples(work)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    loop = LoopConfig(max_steps=args.pairs // args.batch, micro_batch_size=args.batch, log_every=10**9, resume=False)
    cfg = DPOConfig(model=str(work / "model"), output=str(work / "ours"), data=DPODataConfig(train=["unused"]), loop=loop,
                    eval_batch_size=args.batch)
    policy = load_causal_lm(work / "model")
    start, cpu_start = time.perf_counter(), time.process_time()
    reference_pass(cfg, examples, pad_id, work / "ours" / dpo_data.REFERENCE_CACHE)
    groups = dpo_data.length_grouped_batches(examples, args.batch, seed=0)
    step = partial(dpo_step, loss="sigmoid", beta=0.1, label_smoothing=0.0, tau=0.1, offset_scale=1.0)
    train(policy, groups, partial(dpo_data.collate, pad_id=pad_id), step, work / "ours" / "training",
          loop=LoopConfig(max_steps=len(groups), micro_batch_size=1, log_every=10**9, resume=False),
          optim=OptimConfig(lr=1e-6, weight_decay=0.0), schedule=ScheduleConfig(kind="constant", warmup_steps=5))
    return time.perf_counter() - start, time.process_time() - cpu_start


def run_trl(work: Path, args, precompute: bool) -> tuple[float, float]:
    import datasets
    from trl import DPOConfig, DPOTrainer

    from polyglot_llama.model.checkpoint import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(work / "model")
    rows = [json.loads(line) for line in open(work / "pairs.jsonl", encoding="utf-8")]
    dataset = datasets.Dataset.from_list([{"prompt": [{"role": "user", "content": r["prompt"]}],
                                           "chosen": [{"role": "assistant", "content": r["chosen"]}],
                                           "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows])
    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    config = DPOConfig(
        output_dir=str(work / "trl"), per_device_train_batch_size=args.batch, gradient_accumulation_steps=1,
        max_steps=args.pairs // args.batch, learning_rate=1e-6, lr_scheduler_type="constant_with_warmup", warmup_steps=5,
        adam_beta1=0.9, adam_beta2=0.95, adam_epsilon=1e-5, weight_decay=0.0, max_grad_norm=1.0, beta=0.1,
        loss_type=["sigmoid"], logging_steps=10**9, save_strategy="no", report_to=[], bf16=bf16, fp16=False, seed=0,
        dataloader_num_workers=0, max_length=None, gradient_checkpointing=False, precompute_ref_log_probs=precompute,
        use_cpu=not torch.cuda.is_available(),
    )
    trainer = DPOTrainer(model=load_causal_lm(work / "model"), ref_model=None if precompute else load_causal_lm(work / "model"),
                         args=config, train_dataset=dataset, processing_class=tokenizer)
    start, cpu_start = time.perf_counter(), time.process_time()
    trainer.train()
    return time.perf_counter() - start, time.process_time() - cpu_start


def child(side: str, work: Path, args) -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    seconds, cpu = run_ours(work, args) if side == "ours" else run_trl(work, args, precompute=side == "trl-precompute")
    peak = (torch.cuda.max_memory_allocated() if torch.cuda.is_available()
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    print("RESULT " + json.dumps({"seconds": seconds, "peak_bytes": peak, "cpu_seconds": cpu}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="small")
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--pairs", type=int, default=512)
    parser.add_argument("--batch", type=int, default=16, help="pairs per step (2 rows each)")
    parser.add_argument("--window", type=int, default=300, help="longest prompt / response in characters")
    parser.add_argument("--trl-precompute", action="store_true", help="also time TRL with precompute_ref_log_probs=True")
    parser.add_argument("--child", choices=["ours", "trl", "trl-precompute"], help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, Path(args.work), args)
        return
    work = Path(tempfile.mkdtemp(prefix="bench_dpo_"))
    setup(work, args)
    tokenizer, examples = _examples(work)
    tokens = sum(len(e["chosen_ids"]) + len(e["rejected_ids"]) for e in examples[:(args.pairs // args.batch) * args.batch])
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    print(f"model {args.preset}, {len(examples)} pairs ({tokens} tokens in the trained pairs), batch {args.batch} pairs, "
          f"1 epoch, on {device}")
    sides = ["trl", "ours"] + (["trl-precompute"] if args.trl_precompute else [])
    results = {}
    for side in sides:
        argv = [sys.executable, __file__, "--child", side, "--work", str(work), "--preset", args.preset, "--pairs",
                str(args.pairs), "--batch", str(args.batch), "--window", str(args.window), "--vocab", str(args.vocab)]
        out = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
        line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT ")), None)
        if line is None:
            sys.exit(f"{side} failed:\n{out.stderr[-3000:]}")
        results[side] = json.loads(line[len("RESULT "):])
        r = results[side]
        print(f"{side:>15}: {tokens / r['seconds']:9.0f} tokens/s  ({r['seconds']:.1f} s, process CPU {r['cpu_seconds']:.1f} s), "
              f"peak memory {r['peak_bytes'] / 2**20:.0f} MiB")
    ours, trl = results["ours"], results["trl"]
    print(f"ratio ours / TRL DPOTrainer: {trl['seconds'] / ours['seconds']:.2f}× tokens/s by wall clock, "
          f"{trl['cpu_seconds'] / ours['cpu_seconds']:.2f}× by process CPU time (steadier on a shared CPU); "
          f"{ours['peak_bytes'] / trl['peak_bytes']:.2f}× peak memory")
    if "trl-precompute" in results:
        other = results["trl-precompute"]
        print(f"ratio ours / TRL with precompute_ref_log_probs: {other['seconds'] / ours['seconds']:.2f}× by wall clock, "
              f"{other['cpu_seconds'] / ours['cpu_seconds']:.2f}× by CPU time")


if __name__ == "__main__":
    main()
