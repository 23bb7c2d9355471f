"""Benchmark: Korean and Japanese fertility before/after `tokenizer extend`, and the time it takes.

Base: a Llama-2-style tokenizer trained on the English sample plus the first 10 % of the Korean and
Japanese samples (like Llama 2: a little coverage of those scripts, the rest byte fallback). Each language's
sample is split: the first 45 paragraphs feed the extension, the last 15 are held out for measurement
(in-sample numbers are printed too). Times are medians of 3 runs; the baseline is training a fresh
tokenizer of the same final size on the same text, measured in the same run.

    python bench/bench_tokenizer.py [--new-tokens 600]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from tokenizers import Tokenizer

from _checkout import use_checkout

use_checkout()

from polyglot_llama.tokenizer.extend import TokenizerExtendConfig, run as extend
from polyglot_llama.tokenizer.fertility import count_words
from polyglot_llama.tokenizer.train import save_tokenizer_dir, train_llama_tokenizer

SAMPLE = Path(__file__).resolve().parents[1] / "polyglot_llama" / "resources" / "sample_text"
TRAIN_DOCS = 45


def texts(lang: str) -> list[str]:
    return [json.loads(line)["text"] for line in (SAMPLE / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]


def stats(tokenizer: Tokenizer, docs: list[str], lang: str) -> dict:
    ids = [i for e in tokenizer.encode_batch(docs, add_special_tokens=False) for i in e.ids]
    byte_ids = {i for t, i in tokenizer.get_vocab().items() if t.startswith("<0x") and len(t) == 6}
    return {"tokens": len(ids), "per_word": len(ids) / sum(count_words(d, lang) for d in docs),
            "byte_share": sum(i in byte_ids for i in ids) / len(ids)}


def timed(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--new-tokens", type=int, default=600)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_tokenizer_"))
    corpus = {lang: texts(lang) for lang in ("en", "ko", "ja")}
    base_texts = corpus["en"] + corpus["ko"][:6] + corpus["ja"][:6]
    base_dir = save_tokenizer_dir(train_llama_tokenizer(base_texts, 1000), work / "base")
    base = Tokenizer.from_file(str(base_dir / "tokenizer.json"))
    english_same = True
    print(f"base: Llama-2-style BPE, 1000 tokens (English + 10% of ko/ja); +{args.new_tokens} tokens per language\n")
    print(f"{'lang':<4} {'split':<9} {'tokens before':>13} {'after':>7} {'after/before':>12} {'tok/word before':>15} "
          f"{'after':>6} {'byte-fb before':>14} {'after':>6}")
    timings = []
    for lang in ("ko", "ja"):
        train_file = work / f"{lang}.jsonl"
        train_file.write_text("\n".join(json.dumps({"text": t}, ensure_ascii=False) for t in corpus[lang][:TRAIN_DOCS]), encoding="utf-8")
        out = work / f"ext_{lang}"
        cfg = TokenizerExtendConfig(base=str(base_dir), input=[str(train_file)], new_tokens=args.new_tokens, output=str(out))
        extend_s = timed(lambda: extend(cfg))
        scratch_s = timed(lambda: train_llama_tokenizer(corpus[lang][:TRAIN_DOCS], 1000 + args.new_tokens))
        timings.append((lang, extend_s, scratch_s))
        extended = Tokenizer.from_file(str(out / "tokenizer.json"))
        english_same &= all(base.encode(t).ids == extended.encode(t).ids for t in corpus["en"])
        for split, docs in (("held-out", corpus[lang][TRAIN_DOCS:]), ("in-sample", corpus[lang][:TRAIN_DOCS])):
            b, a = stats(base, docs, lang), stats(extended, docs, lang)
            print(f"{lang:<4} {split:<9} {b['tokens']:>13} {a['tokens']:>7} {a['tokens'] / b['tokens']:>12.3f} "
                  f"{b['per_word']:>15.2f} {a['per_word']:>6.2f} {b['byte_share']:>13.1%} {a['byte_share']:>6.1%}")
    print(f"\nEnglish ids identical after both extensions: {english_same}")
    print(f"\n{'lang':<4} {'extend (s)':>10} {'train from scratch (s)':>22} {'extend/scratch':>14}")
    for lang, extend_s, scratch_s in timings:
        print(f"{lang:<4} {extend_s:>10.3f} {scratch_s:>22.3f} {extend_s / scratch_s:>14.2f}")


if __name__ == "__main__":
    main()
