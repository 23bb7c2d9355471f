"""Reward-model training throughput: our loop (`polyglot-llama reward`'s step) vs TRL's `RewardTrainer`.

Both start from the same reward model (a fresh tiny Llama with a scalar head, same seed) and train on the
same tokenised preference pairs (chosen and rejected in one forward pass, margin loss, small table) with
the same batch, optimiser (AdamW β 0.9/0.95, eps 1e-5, weight decay 0.1, clip 1.0) and fp32 precision.
First the two losses are computed on one identical batch and must agree; then each trains for the same
number of steps, timed from the call to its training function to its return (both pay their warm-up,
ours also its end-of-run checkpoint). Prints pairs/s of each and the ratio ours / TRL, by wall clock and
by process CPU time (the steadier figure when other jobs share the CPU).

    python bench/bench_reward.py [--preset tiny] [--steps 60] [--batch 16] [--window 120] [--threads 0] [--order trl-first]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from _checkout import use_checkout

use_checkout()

from polyglot_llama.io import RejectCounter
from polyglot_llama.model.checkpoint import load_tokenizer
from polyglot_llama.model.init import ModelInitConfig
from polyglot_llama.model.init import run as init_model
from polyglot_llama.model.reward_model import build_reward_model, prepare_tokenizer
from polyglot_llama.tokenizer.train import save_tokenizer_dir, train_llama_tokenizer
from polyglot_llama.train.loop import LoopConfig, OptimConfig, ScheduleConfig, train
from polyglot_llama.train.reward import reward_step
from polyglot_llama.train.reward_data import STRENGTH_LABELS, PreferencePair, collate_pairs, encode_pairs

SAMPLE = Path(__file__).resolve().parents[1] / "polyglot_llama" / "resources" / "sample_text"
LANGS = ("en", "de", "ko", "zh")


def synthetic_pairs(n: int, window: int, seed: int) -> list[PreferencePair]:
    """Prompt and chosen in one language, rejected in another; random strengths (so margins vary)."""
    rng = random.Random(seed)
    texts = {lang: [json.loads(line)["text"] for line in (SAMPLE / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines()]
             for lang in LANGS}

    def snippet(lang: str) -> str:
        text = rng.choice(texts[lang])
        start = rng.randrange(0, max(1, len(text) - window))
        return text[start:start + window].strip()

    pairs = []
    for _ in range(n):
        lang = rng.choice(LANGS)
        other = rng.choice([m for m in LANGS if m != lang])
        pairs.append(PreferencePair(prompt=[{"role": "user", "content": snippet(lang)}], chosen=snippet(lang),
                                    rejected=snippet(other), strength=rng.choice(STRENGTH_LABELS), lang=lang))
    return pairs


def trl_trainer(model, tokenizer, examples, args, output: Path):
    import datasets
    from trl import RewardConfig, RewardTrainer

    dataset = datasets.Dataset.from_list([{k: e[k] for k in ("chosen_ids", "rejected_ids", "margin")} for e in examples])
    config = RewardConfig(
        output_dir=str(output), per_device_train_batch_size=args.batch, gradient_accumulation_steps=1,
        max_steps=args.steps, learning_rate=1e-5, lr_scheduler_type="cosine", warmup_steps=5,
        adam_beta1=0.9, adam_beta2=0.95, adam_epsilon=1e-5, weight_decay=0.1, max_grad_norm=1.0,
        logging_steps=10**9, save_strategy="no", report_to=[], bf16=False, fp16=False, seed=0,
        dataloader_num_workers=0, max_length=None, disable_dropout=True, use_cpu=not torch.cuda.is_available(),
    )
    return RewardTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=16, help="pairs per step (2 rows each)")
    parser.add_argument("--window", type=int, default=120, help="characters per prompt / response")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--order", choices=["trl-first", "ours-first"], default="trl-first", help="which trains first")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench_reward_"))
    texts = [json.loads(line)["text"] for lang in LANGS for line in (SAMPLE / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines()]
    tok_dir = save_tokenizer_dir(train_llama_tokenizer(texts, 2000), work / "tok")
    init_model(ModelInitConfig(tokenizer=str(tok_dir), output=str(work / "base"), preset=args.preset, seed=0))
    tokenizer = load_tokenizer(tok_dir)
    base = build_reward_model(work / "base", seed=0)
    prepare_tokenizer(base, tokenizer)
    examples = encode_pairs(synthetic_pairs(args.steps * args.batch, args.window, seed=0), tokenizer,
                            max_length=4096, margin_table="small", rejects=RejectCounter())
    rows = 2 * args.steps * args.batch
    mean_len = sum(len(e["chosen_ids"]) + len(e["rejected_ids"]) for e in examples) / rows
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"model {args.preset} ({sum(p.numel() for p in base.parameters()) / 1e6:.2f}M params) on {device}, "
          f"{len(examples)} pairs (mean {mean_len:.0f} tokens per response row), {args.steps} steps × {args.batch} pairs, "
          f"{torch.get_num_threads()} CPU threads")

    # 1. Same batch, same weights: the two losses must agree.
    first = examples[:args.batch]
    ours_model, trl_model = copy.deepcopy(base).to(device), copy.deepcopy(base).to(device)
    with torch.no_grad():
        batch = {k: v.to(device) for k, v in collate_pairs(first, tokenizer.pad_token_id).items()}
        ours_loss = float(reward_step(ours_model.eval(), batch).loss)
        trainer = trl_trainer(trl_model, tokenizer, examples, args, work / "trl")
        trl_batch = {k: v.to(device) for k, v in trainer.data_collator(first).items()}
        trl_loss = float(trainer.compute_loss(trl_model.eval(), trl_batch))
    print(f"first-batch loss: ours {ours_loss:.6f}, TRL {trl_loss:.6f}")
    assert abs(ours_loss - trl_loss) < 1e-4 * max(1.0, abs(trl_loss)), "the two reward losses disagree on the same batch"

    # 2. Throughput over the same number of steps and pairs.
    def run_trl():
        trl_model.train()
        trainer.train()

    def run_ours():
        ours_model.train()
        train(ours_model, examples, lambda ex: collate_pairs(ex, tokenizer.pad_token_id), reward_step, work / "ours",
              loop=LoopConfig(max_steps=args.steps, micro_batch_size=args.batch, grad_accum=1, log_every=10**9, resume=False),
              optim=OptimConfig(lr=1e-5), schedule=ScheduleConfig(kind="cosine", warmup_steps=5))

    timings = {}
    for name, fn in ([("trl", run_trl), ("ours", run_ours)] if args.order == "trl-first" else [("ours", run_ours), ("trl", run_trl)]):
        start, cpu_start = time.perf_counter(), time.process_time()
        fn()
        timings[name] = (time.perf_counter() - start, time.process_time() - cpu_start)
    (ours_seconds, ours_cpu), (trl_seconds, trl_cpu) = timings["ours"], timings["trl"]

    pairs = args.steps * args.batch
    ours_rate, trl_rate = pairs / ours_seconds, pairs / trl_seconds
    print(f"ours: {ours_rate:.1f} pairs/s ({ours_seconds:.1f} s)   TRL RewardTrainer: {trl_rate:.1f} pairs/s ({trl_seconds:.1f} s)")
    print(f"ratio ours / TRL: {ours_rate / trl_rate:.2f} (wall clock); {trl_cpu / ours_cpu:.2f} by CPU time "
          f"(ours {ours_cpu:.1f} s, TRL {trl_cpu:.1f} s: steadier than wall clock on a shared CPU)")


if __name__ == "__main__":
    main()
