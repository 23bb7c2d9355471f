"""Bits per byte on SmolLM2-135M-Instruct: original → `model extend` → N new-rows-only training steps.

    python bench/bench_extend_real.py [--init distill] [--untie-head] [--init-hidden-weight 1] [--steps 20]
        [--seq-len 64] [--batch 4] [--threads 2]

Text: the bundled parallel samples, Korean paragraphs 1-40 to learn 300 tokens from (and, for init distill,
to distil on), 41-60 held out (the first 8, 200 characters each, as tests/real); training: Korean 1-40 with
25 % English replay 1-40, ``--steps`` steps of ``--batch`` x ``--seq-len`` tokens training only the new rows
(lr 3e-3 after 2 warm-up steps, as the walk-through's first stage). Prints, per language, the bits per byte
of the original model, after extend and after training, and the ratio to the original.
Needs the cached checkpoint (python tests/real/real_checkpoints.py smollm2).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _checkout import use_checkout

ROOT = use_checkout()
REAL = Path.home() / ".cache" / "polyglot_llama" / "real" / "smollm2"
SAMPLE = ROOT / "polyglot_llama" / "resources" / "sample_text"
TRAIN, HELD_OUT, CHARS = 40, 8, 200


def records(lang: str) -> list[dict]:
    return [json.loads(line) for line in (SAMPLE / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines()]


def write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--init", default="distill")
    parser.add_argument("--untie-head", action="store_true", help="model extend --untie-head true")
    parser.add_argument("--init-hidden-weight", type=float, default=0.0)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch
    from tokenizers import Tokenizer

    from polyglot_llama.config import load_config
    from polyglot_llama.corpus.mix import MixConfig, run as mix
    from polyglot_llama.model.bits_per_byte import bits_per_byte
    from polyglot_llama.model.checkpoint import load_causal_lm
    from polyglot_llama.model.extend import ModelExtendConfig, run as extend_model
    from polyglot_llama.tokenizer.extend import TokenizerExtendConfig, run as extend_tokenizer
    from polyglot_llama.train import pretrain

    torch.set_num_threads(args.threads)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="bench_extend_") as tmp:
        work = Path(tmp)
        ko, en = records("ko"), records("en")
        paths = {"ko_train": write(work / "ko_train.jsonl", ko[:TRAIN]), "en_train": write(work / "en_train.jsonl", en[:TRAIN]),
                 "ko_val": write(work / "ko_val.jsonl", ko[TRAIN:]), "en_val": write(work / "en_val.jsonl", en[TRAIN:])}
        extend_tokenizer(TokenizerExtendConfig(base=str(REAL), input=[paths["ko_train"]], new_tokens=300, lang="ko",
                                               output=str(work / "tok")))
        extended = extend_model(ModelExtendConfig(
            model=str(REAL), tokenizer=str(work / "tok"), output=str(work / "ext"), init=args.init,
            init_text=[paths["ko_train"]] if args.init == "distill" else [], untie_head=args.untie_head,
            init_hidden_weight=args.init_hidden_weight,
            eval_text=[paths["ko_val"], paths["en_val"]], eval_max_records=HELD_OUT, eval_max_chars=CHARS))
        extend_seconds = time.time() - started
        mix(load_config(MixConfig, overrides={
            "tokenizer": str(work / "tok"), "output": str(work / "mix"), "total_tokens": args.steps * args.batch * args.seq_len + 4000,
            "sources": [{"name": "ko", "lang": "ko", "paths": [paths["ko_train"]]},
                        {"name": "en", "lang": "en", "paths": [paths["en_train"]]}],
            "replay.lang": "en", "replay.share": 0.25}))
        pretrain.run(load_config(pretrain.PretrainConfig, None, {
            "model": str(work / "ext"), "output": str(work / "cpt"),
            "data.train": [str(work / "mix" / "mixture" / "*.jsonl.gz")], "data.validation": [paths["ko_val"]],
            "data.seq_len": args.seq_len, "loop.micro_batch_size": args.batch, "loop.log_every": 10,
            "loop.save_every": 0, "schedule.warmup_steps": 2,
            "stages": [{"name": "new-rows", "trainable": "new_embeddings", "steps": args.steps, "lr": 3e-3}]}))
        trained = load_causal_lm(work / "cpt")
        tokenizer = Tokenizer.from_file(str(work / "cpt" / "tokenizer.json"))
        report = extended["bits_per_byte"]
        print(f"init {args.init} (untied head {extended['untied_head']}, hidden weight {args.init_hidden_weight}), {args.steps} new-rows steps of {args.batch} x {args.seq_len} tokens; "
              f"extend {extend_seconds:.0f} s, total {time.time() - started:.0f} s")
        print("lang  original  after extend  (ratio)  after training  (ratio)")
        for lang, val in (("ko", ko[TRAIN:TRAIN + HELD_OUT]), ("en", en[TRAIN:TRAIN + HELD_OUT])):
            after_training = bits_per_byte(trained, tokenizer, [r["text"][:CHARS] for r in val], CHARS)
            before, after = report[lang]["before"], report[lang]["after"]
            print(f"{lang:4}  {before:8.3f}  {after:12.3f}  ({after / before:.3f})  {after_training:14.3f}  "
                  f"({after_training / before:.3f})")


if __name__ == "__main__":
    main()
