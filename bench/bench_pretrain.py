"""Pretraining throughput and peak memory: our loop vs a plain Hugging Face `Trainer`, same model, rows, batch.

The model is a random-init SmolLM2-135M shape (30 layers, hidden 576, 9 query / 3 KV heads, FFN 1536,
vocabulary 49152, tied embeddings); both sides train it from the same weights on the same packed rows of
the bundled sample text, fp32 on CPU (bf16 autocast is 25-40× slower on AVX2 CPUs), one process each, with
the same AdamW (fused), betas, eps, weight decay, clipping and warm-up. Every row's labels are its input
ids, so either side scores B·(T−1) next-token targets per step (checked on ours from its logged count).
Each run is its own fresh subprocess, so its peak resident memory (``ru_maxrss``) is its own: "peak" is the
whole process, "train" the rise above the resident size right before training (model loaded, data
ready). A sampler thread also records the peak resident size per phase of the step (forward: the model's
forward, our chunked loss included; backward: from the end of the forward to the optimizer step; optimizer:
the AdamW step). tokens/s times the training call, minus our end-of-run checkpoint write (the Trainer run
writes none). Alternating repeats; medians; ratios ours / Trainer; the load average before and after.

    python bench/bench_pretrain.py [--steps 6] [--seq-len 512] [--batch 2] [--repeats 1] [--layers 30]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _checkout import use_checkout

os.environ.setdefault("HF_HUB_OFFLINE", "1")
use_checkout()

SAMPLE = Path(__file__).resolve().parents[1] / "polyglot_llama" / "resources" / "sample_text"
SMOLLM2_135M = dict(vocab_size=49152, hidden_size=576, num_hidden_layers=30, num_attention_heads=9,
                    num_key_value_heads=3, intermediate_size=1536, tie_word_embeddings=True, max_position_embeddings=2048)


def _rss_mb() -> float:
    """Current resident set size in MB (Linux /proc)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class PhasePeaks:
    """Peak resident size (MB) per phase of the training step, sampled every 2 ms by a thread; the phase is
    switched by hooks on the model's forward and on every optimizer's step (the same on both sides)."""

    def __init__(self, model):
        from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

        self.phase, self.peaks, self.running = "setup", {}, True
        model.register_forward_pre_hook(lambda *_: self._enter("forward"))
        model.register_forward_hook(lambda *_: self._enter("backward"))
        register_optimizer_step_pre_hook(lambda *_: self._enter("optimizer"))
        register_optimizer_step_post_hook(lambda *_: self._enter("between steps"))
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _enter(self, phase: str) -> None:
        self._record()  # the last sample of the phase that ends
        self.phase = phase

    def _record(self) -> None:
        self.peaks[self.phase] = max(self.peaks.get(self.phase, 0.0), _rss_mb())

    def _sample(self) -> None:
        while self.running:
            self._record()
            time.sleep(0.002)

    def stop(self) -> dict[str, float]:
        self.running = False
        self.thread.join()
        return self.peaks


def prepare(work: Path, seq_len: int, layers: int) -> None:
    """Tokenizer, the random-init model and the packed rows, written once for every run."""
    import torch

    from polyglot_llama.model.presets import preset_config
    from polyglot_llama.tokenizer.train import save_tokenizer_dir, train_llama_tokenizer
    from polyglot_llama.train.data import build_packed_dataset
    from transformers import LlamaForCausalLM

    texts = [json.loads(line)["text"] for lang in ("en", "de") for line in (SAMPLE / f"{lang}.jsonl").read_text().splitlines()]
    tok_dir = save_tokenizer_dir(train_llama_tokenizer(texts, 2048), work / "tok")
    torch.manual_seed(0)
    config = preset_config("tiny", **{**SMOLLM2_135M, "num_hidden_layers": layers})
    LlamaForCausalLM(config).save_pretrained(work / "model")
    from polyglot_llama.model.checkpoint import load_tokenizer

    data = build_packed_dataset([str(SAMPLE / "en.jsonl"), str(SAMPLE / "de.jsonl")], load_tokenizer(tok_dir), seq_len,
                                document_masking=False)
    # Every target counts (no -100 at document ends), so both sides score the same number of tokens per step.
    data = data.remove_columns(["labels"]).map(lambda row: {"labels": row["input_ids"]})
    data.save_to_disk(str(work / "rows"))


def child(kind: str, work: Path, steps: int, batch: int, rep: int) -> dict:
    """One training run in this process: {tokens_per_second, peak_mb, train_mb}."""
    import datasets
    import torch

    from polyglot_llama.model.checkpoint import load_causal_lm

    torch.manual_seed(0)
    data = datasets.load_from_disk(str(work / "rows"))
    model = load_causal_lm(work / "model")
    seq_len = len(data[0]["input_ids"])
    tokens = steps * batch * seq_len
    dtype = str(next(model.parameters()).dtype)
    base = _rss_mb()
    phases = PhasePeaks(model)
    if kind == "ours":
        from polyglot_llama.train import checkpointing
        from polyglot_llama.train.data import causal_lm_step, collate_packed
        from polyglot_llama.train.loop import LoopConfig, OptimConfig, ScheduleConfig, train

        saving = [0.0]
        real_save = checkpointing.save

        def timed_save(*args, **kwargs):
            start = time.perf_counter()
            try:
                return real_save(*args, **kwargs)
            finally:
                saving[0] += time.perf_counter() - start

        checkpointing.save = timed_save
        start = time.perf_counter()
        result = train(model, data, collate_packed, causal_lm_step, work / f"ours{rep}",
                       loop=LoopConfig(max_steps=steps, micro_batch_size=batch, log_every=10**9, resume=False),
                       optim=OptimConfig(lr=3e-4, betas=[0.9, 0.95], eps=1e-5, weight_decay=0.1, grad_clip=1.0),
                       schedule=ScheduleConfig(warmup_steps=2))
        elapsed = time.perf_counter() - start - saving[0]
        scored = {h["units"] for h in result["history"]}
        if scored != {batch * (seq_len - 1)}:
            raise RuntimeError(f"ours scored {scored} targets per step, not B·(T−1) = {batch * (seq_len - 1)}")
    else:
        from transformers import Trainer, TrainingArguments

        # Same rows, batch, optimiser settings and schedule shape.
        args = TrainingArguments(
            output_dir=str(work / f"hf{rep}"), per_device_train_batch_size=batch, max_steps=steps,
            learning_rate=3e-4, adam_beta1=0.9, adam_beta2=0.95, adam_epsilon=1e-5, weight_decay=0.1,
            max_grad_norm=1.0, lr_scheduler_type="cosine", warmup_steps=2, logging_strategy="no", save_strategy="no",
            report_to=[], dataloader_num_workers=0, use_cpu=True, disable_tqdm=True, seed=0,
        )
        trainer = Trainer(model=model, args=args, train_dataset=data.remove_columns(["lang", "position_ids"]))
        start = time.perf_counter()
        trainer.train()
        elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux
    return {"tokens_per_second": tokens / elapsed, "peak_mb": peak, "train_mb": peak - base, "dtype": dtype,
            "phase_peak_mb": phases.stop()}


def _run_pairs(work: Path, args) -> tuple[dict[str, list[dict]], tuple, tuple]:
    """Each side's runs in fresh processes, alternated, with the load average before and after."""
    print(f"SmolLM2-135M shape ({args.layers} layers, vocab 49152, tied), {args.steps} steps × batch {args.batch} "
          f"× {args.seq_len} tokens, fp32, {os.environ.get('OMP_NUM_THREADS', 'all')} threads")
    load_before = os.getloadavg()
    results: dict[str, list[dict]] = {"ours": [], "trainer": []}
    # Alternate the two and their order: a busy machine shifts single runs by ±15 % and drifts over minutes.
    for rep in range(args.repeats):
        for kind in ("ours", "trainer") if rep % 2 == 0 else ("trainer", "ours"):
            out = subprocess.run([sys.executable, __file__, "--child", kind, "--work", str(work), "--rep", str(rep),
                                  "--steps", str(args.steps), "--batch", str(args.batch)],
                                 check=True, capture_output=True, text=True)
            results[kind].append(json.loads(out.stdout.strip().splitlines()[-1]))
    return results, load_before, os.getloadavg()


def _report(results: dict[str, list[dict]], load_before: tuple, load_after: tuple) -> None:
    dtypes = {r["dtype"] for runs in results.values() for r in runs}
    if len(dtypes) != 1:
        raise RuntimeError(f"the two sides trained in different dtypes: {dtypes}")
    numeric = ("tokens_per_second", "peak_mb", "train_mb")
    med = {kind: {key: statistics.median(r[key] for r in runs) for key in numeric} for kind, runs in results.items()}
    print("| | tokens/s | peak RSS (MB) | rise during training (MB) |")
    print("|---|---:|---:|---:|")
    for kind in ("ours", "trainer"):
        m = med[kind]
        print(f"| {kind} | {m['tokens_per_second']:.0f} | {m['peak_mb']:.0f} | {m['train_mb']:.0f} |")
    for kind, runs in results.items():
        speeds = ", ".join(f"{r['tokens_per_second']:.1f}" for r in runs)
        peaks = ", ".join(f"{r['peak_mb']:.0f}" for r in runs)
        print(f"{kind} runs: tokens/s {speeds}; peak MB {peaks}")
    o, t = med["ours"], med["trainer"]
    print(f"| ours / Trainer | {o['tokens_per_second'] / t['tokens_per_second']:.2f}× | {o['peak_mb'] / t['peak_mb']:.2f}× "
          f"| {o['train_mb'] / t['train_mb']:.2f}× |")
    for kind, runs in results.items():
        for r in runs:
            print(f"{kind} peak RSS by phase (MB): " + ", ".join(f"{k} {v:.0f}" for k, v in r["phase_peak_mb"].items()))
    print(f"dtype {dtypes.pop()}; load average (1, 5, 15 min) before {load_before}, after {load_after}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--layers", type=int, default=30, help="fewer for a quick look; 30 is SmolLM2-135M")
    parser.add_argument("--child", choices=["ours", "trainer"], help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--rep", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, Path(args.work), args.steps, args.batch, args.rep)))
        return

    # Every run writes checkpoints of the 135M model (several GB in all): the folder goes however the bench ends.
    with tempfile.TemporaryDirectory(prefix="bench_pretrain_") as tmp:
        work = Path(tmp)
        prepare(work, args.seq_len, args.layers)
        results, load_before, load_after = _run_pairs(work, args)
    _report(results, load_before, load_after)


if __name__ == "__main__":
    main()
