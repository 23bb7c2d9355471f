"""Multiple-choice scoring: `polyglot-llama eval` (shared-prefix) vs lm-evaluation-harness's HF backend, one run.

    python bench/bench_eval_vs_lm_eval.py [--model DIR] [--items 24] [--batch-size 8]

Two task shapes, the same items, model object and batch size on both sides:

* long: Belebele-like, 4 choices after a passage of two sample-text documents (about 100-450 tokens),
  "which sentence is from the passage?", one item set per language (en, de, ko, zh);
* short: the bundled eval/data/multiple_choice.jsonl (capitals and the like, one line of prompt).

lm-eval runs its own task YAMLs (dataset_path: json on the same JSONL) through ``simple_evaluate``; ours runs
the `multiple_choice` task kind. Both sides are warmed up first (datasets' Arrow cache, first forward), then
timed. Prints seconds, the ratio, and the accuracy per language from both (which must be equal).
Default model: the SmolLM2-135M checkpoint cached under ~/.cache/polyglot_llama/real/smollm2 when present,
else a freshly initialised `small` preset with a tokenizer trained on the sample text.
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
LANGS = ["en", "de", "ko", "zh"]
PROMPT = "{passage}\nQuestion: Which sentence is from the passage above?\nAnswer:"


def first_sentence(text: str) -> str:
    for mark in (". ", "。", "다. ", "! ", "? "):
        if mark in text:
            return text[: text.index(mark) + len(mark)].strip()
    return text[:80]


def long_items(per_lang: int) -> list[dict]:
    """Belebele-shaped records: a passage of 2 documents; the right choice is the first sentence of one of them."""
    items = []
    for lang in LANGS:
        docs = [json.loads(line)["text"] for line in
                (ROOT / "polyglot_llama/resources/sample_text" / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines()]
        for i in range(per_lang):
            passage = [docs[(2 * i + k) % len(docs)] for k in range(2)]
            distractors = [first_sentence(docs[(2 * i + 17 + 5 * k) % len(docs)]) for k in range(3)]
            answer = i % 4
            choices = distractors[:answer] + [first_sentence(passage[i % 2])] + distractors[answer:]
            items.append({"lang": lang, "passage": " ".join(passage), "choices": choices, "answer": answer})
    return items


def harness_yaml(name: str, data: Path, prompt: str) -> str:
    """An lm-eval task over local JSONL, the prompt in Jinja (its format), the same text as ours."""
    return (f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\n"
            f"test_split: test\noutput_type: multiple_choice\ndoc_to_text: {json.dumps(prompt)}\n"
            "doc_to_choice: \"{{choices}}\"\ndoc_to_target: answer\nmetric_list:\n  - metric: acc\n")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(REAL) if REAL.is_dir() else "")
    parser.add_argument("--items", type=int, default=6, help="long-passage items per language")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    import lm_eval
    import torch
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from polyglot_llama.evaluation.checkpoints import Checkpoint
    from polyglot_llama.evaluation.data import DataSpec
    from polyglot_llama.evaluation.lm import Runtime
    from polyglot_llama.evaluation.multiple_choice import MultipleChoiceTask
    from polyglot_llama.io import RejectCounter

    tmp = Path(tempfile.mkdtemp(prefix="bench_eval_"))
    model_dir = args.model
    if not model_dir:
        from polyglot_llama.model.init import ModelInitConfig
        from polyglot_llama.model.init import run as init_model
        from polyglot_llama.tokenizer.train import (
            save_tokenizer_dir,
            train_llama_tokenizer,
        )

        texts = [json.loads(line)["text"] for path in sorted((ROOT / "polyglot_llama/resources/sample_text").glob("*.jsonl"))
                 for line in path.read_text(encoding="utf-8").splitlines()]
        save_tokenizer_dir(train_llama_tokenizer(texts, 4000), tmp / "tok")
        init_model(ModelInitConfig(tokenizer=str(tmp / "tok"), output=str(tmp / "model"), preset="small"))
        model_dir = str(tmp / "model")
    checkpoint = Checkpoint(model_dir, "bench", Runtime(device="cpu", dtype="float32", batch_size=args.batch_size))
    lm = checkpoint.language_model()
    harness = HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=args.batch_size, device="cpu")

    short_rows = [json.loads(line) for line in (ROOT / "eval/data/multiple_choice.jsonl").read_text(encoding="utf-8").splitlines()]
    shapes = {"long": (long_items(args.items), PROMPT), "short": (short_rows, "{prompt}")}
    print(f"model {model_dir} ({sum(p.numel() for p in lm.model.parameters()) / 1e6:.0f}M parameters), "
          f"batch {args.batch_size}, {torch.get_num_threads()} threads")
    for shape, (rows, prompt) in shapes.items():
        langs = sorted({r["lang"] for r in rows})
        task_dir = tmp / f"harness_{shape}"
        task_dir.mkdir()
        names = {}
        for lang in langs:
            data = write_jsonl(tmp / f"{shape}_{lang}.jsonl", [r for r in rows if r["lang"] == lang])
            names[lang] = f"bench_{shape}_{lang}"
            jinja = prompt.replace("{", "{{").replace("}", "}}")
            (task_dir / f"{names[lang]}.yaml").write_text(harness_yaml(names[lang], data, jinja), encoding="utf-8")
        all_data = write_jsonl(tmp / f"{shape}.jsonl", rows)
        ours = MultipleChoiceTask(name=shape, data=DataSpec(files=[str(all_data)]), prompt=prompt)
        manager = TaskManager(include_path=str(task_dir))

        def run_harness(limit=None, names=names, manager=manager):
            return lm_eval.simple_evaluate(model=harness, tasks=list(names.values()), task_manager=manager, limit=limit,
                                           verbosity="ERROR")

        def run_ours(limit=0, ours=ours):
            ours.data.limit = limit
            return ours.evaluate(checkpoint, RejectCounter())["languages"]

        run_harness(limit=2), run_ours(limit=2)  # warm-up: Arrow cache, allocator, first forward
        start = time.perf_counter()
        theirs = run_harness()
        harness_s = time.perf_counter() - start
        start = time.perf_counter()
        mine = run_ours()
        ours_s = time.perf_counter() - start
        their_acc = {lang: theirs["results"][names[lang]]["acc,none"] for lang in langs}
        our_acc = {lang: mine[lang]["accuracy"] for lang in langs}
        n_tokens = sum(len(lm.encode(prompt.format(**r))) for r in rows) / len(rows)
        print(f"\n{shape}: {len(rows)} items x {len(rows[0]['choices'])} choices, prompts {n_tokens:.0f} tokens on average")
        print(f"  lm-eval {lm_eval.__version__ if hasattr(lm_eval, '__version__') else ''} HF backend: {harness_s:7.2f} s")
        print(f"  polyglot-llama eval      : {ours_s:7.2f} s   -> {harness_s / ours_s:.2f}x faster")
        print("  accuracy  " + "  ".join(f"{lang}: {our_acc[lang]:.3f} vs {their_acc[lang]:.3f}" for lang in langs))
        print("  same accuracies in every language: " + str(all(abs(our_acc[l] - their_acc[l]) < 1e-9 for l in langs)))


if __name__ == "__main__":
    main()
