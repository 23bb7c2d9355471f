"""Pretraining throughput: our loop vs a plain Hugging Face `Trainer` on the same model, data, batch and precision.

Both train the same freshly initialised model (same seed) on the same packed rows of the bundled English
sample for the same number of steps, fp32 on CPU (bf16 autocast is 25-40× slower on AVX2 CPUs). Prints
the median tokens/s of each over alternating repeats and the ratio ours / Trainer. Our timing includes
the end-of-run resumable checkpoint (model + optimizer state), which the Trainer run does not write.

    python bench/bench_pretrain.py [--preset small] [--steps 40] [--seq-len 256] [--batch 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from polyglot_llama.model.checkpoint import load_causal_lm, load_tokenizer
from polyglot_llama.model.init import ModelInitConfig
from polyglot_llama.model.init import run as init_model
from polyglot_llama.tokenizer.train import save_tokenizer_dir, train_llama_tokenizer
from polyglot_llama.train.data import build_packed_dataset, causal_lm_step, collate_packed
from polyglot_llama.train.loop import LoopConfig, OptimConfig, ScheduleConfig, train

SAMPLE = Path(__file__).resolve().parents[1] / "polyglot_llama" / "resources" / "sample_text"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="small")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_pretrain_"))
    texts = [line for lang in ("en", "de") for line in (SAMPLE / f"{lang}.jsonl").read_text().splitlines()]
    import json

    tok_dir = save_tokenizer_dir(train_llama_tokenizer([json.loads(t)["text"] for t in texts], 2048), work / "tok")
    init_model(ModelInitConfig(tokenizer=str(tok_dir), output=str(work / "init"), preset=args.preset, seed=0))
    tokenizer = load_tokenizer(tok_dir)
    data = build_packed_dataset([str(SAMPLE / "en.jsonl"), str(SAMPLE / "de.jsonl")], tokenizer, args.seq_len,
                                document_masking=False)
    tokens = args.steps * args.batch * args.seq_len
    print(f"model {args.preset}, {len(data)} rows of {args.seq_len} tokens, {args.steps} steps × batch {args.batch}")

    from transformers import Trainer, TrainingArguments

    def ours(rep: int) -> float:
        model = load_causal_lm(work / "init")
        start = time.perf_counter()
        train(model, data, collate_packed, causal_lm_step, work / f"ours{rep}",
              loop=LoopConfig(max_steps=args.steps, micro_batch_size=args.batch, log_every=10**9),
              optim=OptimConfig(lr=3e-4), schedule=ScheduleConfig(warmup_steps=5))
        return tokens / (time.perf_counter() - start)

    def hf_trainer(rep: int) -> float:
        # Same rows, batch, optimiser settings and schedule shape.
        model = load_causal_lm(work / "init")
        trainer_args = TrainingArguments(
            output_dir=str(work / f"hf{rep}"), per_device_train_batch_size=args.batch, max_steps=args.steps,
            learning_rate=3e-4, adam_beta1=0.9, adam_beta2=0.95, adam_epsilon=1e-5, weight_decay=0.1,
            max_grad_norm=1.0, lr_scheduler_type="cosine", warmup_steps=5, logging_strategy="no", save_strategy="no",
            report_to=[], dataloader_num_workers=0, use_cpu=True, disable_tqdm=True, seed=0,
        )
        trainer = Trainer(model=model, args=trainer_args, train_dataset=data.remove_columns(["lang", "position_ids"]))
        start = time.perf_counter()
        trainer.train()
        return tokens / (time.perf_counter() - start)

    # Alternate the two, several times, and compare medians: a busy machine shifts single runs by ±15 %.
    results = {"ours": [], "trainer": []}
    for rep in range(args.repeats):
        results["ours"].append(ours(rep))
        results["trainer"].append(hf_trainer(rep))
    med = {name: statistics.median(values) for name, values in results.items()}
    for name, values in results.items():
        print(f"{name:8s} median {med[name]:8.0f} tokens/s  (runs: {', '.join(f'{v:.0f}' for v in values)})")
    print(f"ratio ours / transformers.Trainer (medians): {med['ours'] / med['trainer']:.2f}")


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
