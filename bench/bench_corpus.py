"""Documents/s per core of language ID and of the full Korean recipe against a plain fastText loop.

The baseline is the physical limit for language ID: a loop calling the fastText model's ``predict`` on the
same documents (newlines replaced, as fastText reads one line). Printed: docs/s of each and the time
ratios (ours / baseline; 1.00 = no overhead). Target for the LID step: within 1.25x.

Times are CPU seconds of this process (``time.process_time``), i.e. docs/s per core: on a shared machine
wall-clock time mostly measures the neighbours. The recipe runs in this process (one task, one worker).
Also printed: where the recipe's time goes (Kiwi segmentation of the documents LID passes; datatrove's
Gopher repetition filter against ours, on the same words), and the wall-clock speed-up of 2 workers over
1 (2 tasks each), with the machine's load average, which that number depends on.

    python bench/bench_corpus.py --docs 3000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from _checkout import use_checkout

ROOT = use_checkout()

from polyglot_llama.config import load_config  # noqa: E402
from polyglot_llama.corpus.build import CorpusBuildConfig, run  # noqa: E402
from polyglot_llama.corpus.language_steps import LanguageTagger  # noqa: E402
from polyglot_llama.corpus.lid import load_lid_model  # noqa: E402

SAMPLES = ROOT / "polyglot_llama" / "resources" / "sample_text"


def make_documents(n: int, seed: int = 0) -> list[dict]:
    """Web-page-sized documents: 3-8 random sample paragraphs each, 80 % Korean, 20 % other languages."""
    rng = random.Random(seed)
    paragraphs = {p.stem: [json.loads(line)["text"] for line in p.open(encoding="utf-8")] for p in SAMPLES.glob("*.jsonl")}
    others = sorted(set(paragraphs) - {"ko"})
    docs = []
    for i in range(n):
        lang = "ko" if rng.random() < 0.8 else rng.choice(others)
        docs.append({"id": f"doc-{i}", "text": "\n".join(rng.sample(paragraphs[lang], rng.randint(3, 8))), "lang": lang})
    return docs


def plain_loop(docs: list[dict]) -> float:
    ft = load_lid_model().fasttext_model
    start = time.process_time()
    for d in docs:
        ft.predict(d["text"].replace("\n", " "), k=1)
    return time.process_time() - start


def lid_step(docs: list[dict]) -> float:
    from datatrove.data import Document

    documents = [Document(text=d["text"], id=d["id"]) for d in docs]
    tagger = LanguageTagger()
    start = time.process_time()
    for _ in tagger.run(iter(documents)):
        pass
    return time.process_time() - start


def full_recipe(docs: list[dict], workdir: Path, tasks: int = 1, workers: int = 1) -> tuple[float, float]:
    """(CPU seconds of this process, wall seconds) of `corpus build` with the ko recipe."""
    # two input files: tasks split the input by file, so with one file a second task would get nothing
    raw = [workdir / f"raw{part}.jsonl" for part in range(2)]
    for part, path in enumerate(raw):
        path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs[part::2]), encoding="utf-8")
    cfg = load_config(CorpusBuildConfig, ROOT / "data_recipes" / "ko.yaml",
                      {"input": [str(p) for p in raw], "output": str(workdir / f"out{tasks}{workers}"), "tasks": tasks,
                       "workers": workers})
    start, wall = time.process_time(), time.perf_counter()
    result = run(cfg)
    elapsed, wall = time.process_time() - start, time.perf_counter() - wall
    print(f"ko recipe ({tasks} tasks, {workers} workers) kept {result['documents_kept']}/{result['documents_in']}",
          file=sys.stderr)
    return elapsed, wall


def recipe_parts(docs: list[dict]) -> tuple[float, float, float]:
    """CPU seconds of Kiwi on the Korean documents, and of datatrove's / our repetition filter on them."""
    from datatrove.data import Document
    from datatrove.pipeline.filters.gopher_repetition_filter import GopherRepetitionFilter

    from polyglot_llama.corpus.repetition import FastGopherRepetitionFilter
    from polyglot_llama.corpus.words import word_tokenizer

    recipe = load_config(CorpusBuildConfig, ROOT / "data_recipes" / "ko.yaml", {}).gopher_repetition
    params = {k: getattr(recipe, k) for k in ("dup_line_frac", "dup_para_frac", "dup_line_char_frac",
                                              "dup_para_char_frac")}
    params["top_n_grams"] = tuple((int(n), f) for n, f in recipe.top_n_grams)
    params["dup_n_grams"] = tuple((int(n), f) for n, f in recipe.dup_n_grams)
    kiwi = word_tokenizer("ko")
    korean = [Document(text=d["text"], id=d["id"]) for d in docs if d["lang"] == "ko"]
    start = time.process_time()
    words = {d.id: kiwi.word_tokenize(d.text) for d in korean}
    segment = time.process_time() - start

    class Cached(type(kiwi)):  # the words computed above: time the filters only
        def word_tokenize(self, text):
            return words[current]

    timings = []
    for cls in (GopherRepetitionFilter, FastGopherRepetitionFilter):
        step = cls(**params, language=Cached())
        start = time.process_time()
        for doc in korean:
            current = doc.id
            step.filter(doc)
        timings.append(time.process_time() - start)
    return segment, timings[0], timings[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5, help="best of N (interleaved) for the LID timings")
    args = parser.parse_args()
    from loguru import logger

    logger.remove()  # datatrove's per-task logging would dominate the terminal, not the time
    docs = make_documents(args.docs)
    chars = sum(len(d["text"]) for d in docs)
    load_lid_model()  # fetch/load outside the timings
    # interleaved, best of N: on a shared machine, load changes between runs would otherwise bias one side
    base, ours = float("inf"), float("inf")
    for _ in range(args.repeats):
        base, ours = min(base, plain_loop(docs)), min(ours, lid_step(docs))
    segment, datatrove_rep, our_rep = recipe_parts(docs)
    with tempfile.TemporaryDirectory() as tmp:
        full, _ = full_recipe(docs, Path(tmp))
        load = os.getloadavg()[0]
        _, one = full_recipe(docs, Path(tmp), tasks=2, workers=1)
        _, two = full_recipe(docs, Path(tmp), tasks=2, workers=2)
    n = len(docs)
    print(f"{n} documents, {chars / n:.0f} characters each on average, one core")
    print(f"plain fastText predict loop : {n / base:10.0f} docs/s")
    print(f"LID step (LanguageTagger)   : {n / ours:10.0f} docs/s   time ratio vs plain loop {ours / base:.2f}x")
    print(f"full ko recipe (all stages) : {n / full:10.0f} docs/s   time ratio vs plain loop {full / base:.2f}x")
    print(f"  of which Kiwi segmentation: {segment / base:.2f}x the plain loop; recipe without it "
          f"{(full - segment) / base:.2f}x")
    print(f"  Gopher repetition filter  : datatrove {datatrove_rep / base:.2f}x, ours {our_rep / base:.2f}x the plain "
          f"loop ({datatrove_rep / our_rep:.1f}x faster, same decisions)")
    print(f"2 workers vs 1 (2 tasks)    : {one / two:.2f}x faster by wall clock ({one:.1f} s vs {two:.1f} s; "
          f"load average {load:.1f} on {len(os.sched_getaffinity(0))} cores)")


if __name__ == "__main__":
    main()
