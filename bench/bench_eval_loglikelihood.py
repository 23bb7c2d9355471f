"""Throughput of multiple-choice scoring: batched, length-sorted `loglikelihoods` vs one request per forward.

    python bench/bench_eval_loglikelihood.py [--preset small] [--batch-size 16] [--items 60]

Scores the bundled multiple-choice items (4 choices each, en/ko/ja/zh/de) on a freshly initialised model of
the given preset with a tokenizer trained on the sample text, both ways in the same run, checks that both
give the same log-likelihoods, and prints requests per second and the ratio.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from _checkout import use_checkout

ROOT = use_checkout()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--items", type=int, default=60, help="multiple-choice items (x4 requests)")
    args = parser.parse_args()

    from polyglot_llama.evaluation.checkpoints import Checkpoint
    from polyglot_llama.evaluation.lm import Runtime
    from polyglot_llama.model.init import ModelInitConfig, run as init_model
    from polyglot_llama.tokenizer.train import save_tokenizer_dir, train_llama_tokenizer

    texts = [json.loads(line)["text"] for path in sorted((ROOT / "polyglot_llama/resources/sample_text").glob("*.jsonl"))
             for line in path.read_text(encoding="utf-8").splitlines()]
    items = [json.loads(line) for line in (ROOT / "eval/data/multiple_choice.jsonl").read_text(encoding="utf-8").splitlines()]
    items = items[:: max(1, len(items) // args.items)][: args.items]
    with tempfile.TemporaryDirectory() as tmp:
        save_tokenizer_dir(train_llama_tokenizer(texts, 4000), Path(tmp) / "tok")
        init_model(ModelInitConfig(tokenizer=str(Path(tmp) / "tok"), output=str(Path(tmp) / "model"), preset=args.preset))
        checkpoint = Checkpoint(str(Path(tmp) / "model"), "bench", Runtime(batch_size=args.batch_size, dtype="float32"))
        lm = checkpoint.language_model()
        requests = [lm.split_continuation(item["prompt"], " " + choice) for item in items for choice in item["choices"]]

        lm.loglikelihoods(requests[: args.batch_size])  # warm-up
        start = time.perf_counter()
        batched = lm.loglikelihoods(requests)
        batched_s = time.perf_counter() - start

        lm.runtime.batch_size = 1
        start = time.perf_counter()
        single = lm.loglikelihoods(requests)
        single_s = time.perf_counter() - start

    assert torch.allclose(torch.tensor(batched), torch.tensor(single), atol=1e-3), "batched and single scores differ"
    n = len(requests)
    print(f"preset {args.preset}, {n} requests, device {lm.device}")
    print(f"one request per forward : {n / single_s:8.1f} requests/s ({single_s:.2f} s)")
    print(f"batched ({args.batch_size}, length-sorted): {n / batched_s:8.1f} requests/s ({batched_s:.2f} s)")
    print(f"speed-up: {single_s / batched_s:.2f}x")


if __name__ == "__main__":
    main()
