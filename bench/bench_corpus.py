"""Documents/s per core of language ID and of the full Korean recipe against a plain fastText loop.

The baseline is the physical limit for language ID: a loop calling the fastText model's ``predict`` on the
same documents (newlines replaced, as fastText reads one line). Printed: docs/s of each and the time
ratios (ours / baseline; 1.00 = no overhead). Target for the LID step: within 1.25x.

Times are CPU seconds of this process (``time.process_time``), i.e. docs/s per core: on a shared machine
wall-clock time mostly measures the neighbours; each is the best of ``--repeats`` runs (the per-eojeol recipe's too,
after a first build that loads the models). The recipe runs in this process (one task, one worker),
once with FineWeb-2's whole-document Kiwi (``segmenter: datatrove``) and once with Kiwi per eojeol,
memoised (``segmenter: datatrove_eojeol``, the ko recipe's). Also printed: where the recipe's time goes (Kiwi on the
Korean documents both ways, with the memo's hit rate, how many documents get identical words and identical
filter decisions; the same on the real Korean text of tests/real_text.py, whose vocabulary is not the
bench's few hundred sample paragraphs), and the wall-clock speed-up of 2 workers over 1 (the same 2 tasks
over ``--files`` input files; the documents each task read are printed, so an idle worker shows), with the
machine's load average, which that number depends on.

    python bench/bench_corpus.py --docs 3000
    python bench/bench_corpus.py --docs 800 --sections workers     # only 1 vs 2 workers
    python bench/bench_corpus.py --docs 6000 --sections eojeol     # only the per-eojeol recipe
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

import _checkout
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


def full_recipe(docs: list[dict], workdir: Path, segmenter: str = "datatrove", tasks: int = 1, workers: int = 1,
                files: int = 1) -> tuple[float, float, list[int]]:
    """(CPU seconds of this process, wall seconds, documents read per task) of `corpus build` with the ko recipe."""
    # tasks split the input by file (task i reads files i, i + tasks, ...): write several, or a task idles
    folder = workdir.parent / f"raw-{files}"
    if not folder.is_dir():
        folder.mkdir()
        for part in range(files):
            (folder / f"{part:03d}.jsonl").write_text(
                "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs[part::files]), encoding="utf-8")
    workdir.mkdir(exist_ok=True)
    out = workdir / f"out-{segmenter}-{tasks}-{workers}"
    cfg = load_config(CorpusBuildConfig, ROOT / "data_recipes" / "ko.yaml",
                      {"input": [str(folder)], "output": str(out), "tasks": tasks, "workers": workers,
                       "segmenter": segmenter, "resume": False})
    start, wall = time.process_time(), time.perf_counter()
    result = run(cfg)
    elapsed, wall = time.process_time() - start, time.perf_counter() - wall
    per_task = []
    for rank in range(tasks):  # the reader's count in each filter task's stats: did every task get work?
        blocks = json.loads((out / "work" / "logs" / "filter" / "stats" / f"{rank:05d}.json").read_text())
        read = next(b for b in blocks if b["name"].endswith("read"))["stats"]
        per_task.append(sum(v["total"] if isinstance(v, dict) else v for k, v in read.items() if k.startswith("docs_in|")))
    print(f"ko recipe ({segmenter}, {tasks} tasks, {workers} workers) kept {result['documents_kept']}/"
          f"{result['documents_in']}", file=sys.stderr)
    return elapsed, wall, per_task


def recipe_decisions(texts: list[str], segmenter: str) -> list:
    """(step, reason) or True per Korean text from the ko recipe's three word-based filters, in recipe order."""
    from datatrove.data import Document

    from polyglot_llama.corpus.build import _filter_steps
    from polyglot_llama.corpus.quality_steps import PerLanguageFilter

    cfg = load_config(CorpusBuildConfig, ROOT / "data_recipes" / "ko.yaml",
                      {"input": ["-"], "output": "-", "segmenter": segmenter})
    steps = [s for s in _filter_steps(cfg, ["-"], None) if isinstance(s, PerLanguageFilter)]
    out = []
    for text in texts:
        doc = Document(text=text, id="-", metadata={"language": "ko"})
        result = next(((s.kind, r if isinstance(r, bool) else r[1]) for s in steps if (r := s.filter(doc)) is not True),
                      True)
        out.append(result)
    return out


def segmentation(texts: list[str]) -> dict:
    """CPU seconds of whole-document Kiwi and of the per-eojeol memo on ``texts``; agreement of words and decisions."""
    from polyglot_llama.corpus.words import word_tokenizer

    whole, memo = word_tokenizer("ko"), word_tokenizer("ko", "datatrove_eojeol")
    memo._words.clear()  # cold: this run's texts only
    start = time.process_time()
    reference = [whole.word_tokenize(t) for t in texts]
    whole_s = time.process_time() - start
    eojeols = sum(len(t.split()) for t in texts)
    start = time.process_time()
    per_eojeol = [memo.word_tokenize(t) for t in texts]
    memo_s = time.process_time() - start
    distinct = len(memo._words)
    same_words = sum(a == b for a, b in zip(reference, per_eojeol))
    word_counts = sum(len(a) == len(b) for a, b in zip(reference, per_eojeol))
    decisions = recipe_decisions(texts, "datatrove"), recipe_decisions(texts, "datatrove_eojeol")
    same_decisions = sum(a == b for a, b in zip(*decisions))
    return {"whole": whole_s, "memo": memo_s, "hit_rate": 1 - distinct / eojeols, "texts": len(texts),
            "chars": sum(map(len, texts)), "same_words": same_words, "same_word_counts": word_counts,
            "same_decisions": same_decisions, "kept": sum(d is True for d in decisions[0])}


def repetition_filters(docs: list[dict]) -> tuple[float, float]:
    """CPU seconds of datatrove's / our repetition filter on the Korean documents (words computed beforehand)."""
    from datatrove.data import Document
    from datatrove.pipeline.filters.gopher_repetition_filter import GopherRepetitionFilter

    from polyglot_llama.corpus.repetition import FastGopherRepetitionFilter
    from polyglot_llama.corpus.words import word_tokenizer

    recipe = load_config(CorpusBuildConfig, ROOT / "data_recipes" / "ko.yaml", {}).gopher_repetition
    params = {k: getattr(recipe, k) for k in ("dup_line_frac", "dup_para_frac", "dup_line_char_frac",
                                              "dup_para_char_frac")}
    params["top_n_grams"] = tuple((int(n), f) for n, f in recipe.top_n_grams)
    params["dup_n_grams"] = tuple((int(n), f) for n, f in recipe.dup_n_grams)
    kiwi = word_tokenizer("ko", "datatrove_eojeol")
    korean = [Document(text=d["text"], id=d["id"]) for d in docs if d["lang"] == "ko"]
    words = {d.id: kiwi.word_tokenize(d.text) for d in korean}

    class Cached(type(kiwi)):  # the words computed above: time the filters only
        def word_tokenize(self, text):
            return words[current]

    timings = []
    for cls in (GopherRepetitionFilter, FastGopherRepetitionFilter):
        step = cls(**params, language=Cached(kiwi.inner))
        start = time.process_time()
        for doc in korean:
            current = doc.id
            step.filter(doc)
        timings.append(time.process_time() - start)
    return timings[0], timings[1]


def _spin(_: int) -> int:
    total = 0
    for i in range(10_000_000):  # ~0.5-1 s of pure-Python CPU work
        total += i
    return total


def machine_parallelism() -> float:
    """Wall-clock speed-up of 2 forked processes over 1 on the same two pure-Python jobs: what the machine gives.

    On an idle 2-core machine about 2.0; when other jobs leave this session one core's worth, about 1.0, and
    no pipeline can do better than that.
    """
    import multiprocessing

    walls = []
    for workers in (1, 2):
        start = time.perf_counter()
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            pool.map(_spin, range(2))
        walls.append(time.perf_counter() - start)
    return walls[0] / walls[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5, help="best of N: the LID timings (interleaved) and the "
                        "per-eojeol recipe's (after a first build that loads the models)")
    parser.add_argument("--files", type=int, default=8, help="input files for the 1 vs 2 worker runs")
    parser.add_argument("--sections", default="lid,recipe,workers", help="comma-separated: lid, recipe (both segmenters, Kiwi analysis), eojeol (only the "
                        "per-eojeol recipe, quick enough for large --docs), workers")
    parser.add_argument("--workers-segmenter", default="datatrove", help="segmenter of the 1 vs 2 worker runs")
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    from loguru import logger

    logger.remove()  # datatrove's per-task logging would dominate the terminal, not the time
    docs = make_documents(args.docs)
    chars = sum(len(d["text"]) for d in docs)
    n = len(docs)
    load_lid_model()  # fetch/load outside the timings
    # interleaved, best of N: on a shared machine, load changes between runs would otherwise bias one side
    base, ours = float("inf"), float("inf")
    for _ in range(args.repeats if sections & {"lid", "recipe", "eojeol"} else 0):
        base, ours = min(base, plain_loop(docs)), min(ours, lid_step(docs))
    lines = [f"{n} documents, {chars / n:.0f} characters each on average; CPU time of one process "
             f"(load average {os.getloadavg()[0]:.1f} on {len(os.sched_getaffinity(0))} cores)"]
    if sections & {"lid", "recipe", "eojeol"}:
        lines.append(f"plain fastText predict loop        : {n / base:8.0f} docs/s")
        lines.append(f"LID step (LanguageTagger)          : {n / ours:8.0f} docs/s   {ours / base:7.2f}x the plain loop")
    with tempfile.TemporaryDirectory() as tmp:
        segmenters = ("datatrove", "datatrove_eojeol") if "recipe" in sections else ("datatrove_eojeol",)
        if sections & {"recipe", "eojeol"}:
            from polyglot_llama.corpus.words import word_tokenizer

            full = {}
            for seg in segmenters:
                # again: models loaded, as in any build past its first documents; best of --repeats, as the loop's
                # (whole-document Kiwi, ~100x the loop, once)
                repeats = max(args.repeats, 1) if seg == "datatrove_eojeol" else 1
                runs = ["first"] + [f"again-{i}" for i in range(repeats)]
                for run_no in runs:
                    word_tokenizer("ko", "datatrove_eojeol")._words.clear()  # the memo starts empty every time
                    full[seg, run_no] = full_recipe(docs, Path(tmp) / run_no, seg)[0]
                full[seg, "again"] = min(full[seg, r] for r in runs[1:])
            for seg in segmenters:
                label = {"datatrove": "whole-document Kiwi (FineWeb-2)", "datatrove_eojeol": "Kiwi per eojeol, memo"}[seg]
                lines.append(f"full ko recipe, {label:<32}: {n / full[seg, 'again']:8.0f} docs/s   "
                             f"{full[seg, 'again'] / base:7.2f}x the plain loop (first build in the process, "
                             f"loading Kiwi and the LID model: {full[seg, 'first'] / base:.2f}x)")
        if "recipe" in sections:
            bench = segmentation([d["text"] for d in docs if d["lang"] == "ko"])
            real = segmentation([d["text"] for d in _checkout.real_text().korean()])
            for name, m in (("bench documents", bench), ("real Korean text", real)):
                lines.append(
                    f"  Kiwi on {name:<16} ({m['texts']} docs, {m['chars'] / m['texts']:.0f} chars): whole "
                    f"{m['whole'] / m['chars'] * 1e6:.1f} ms, per eojeol {m['memo'] / m['chars'] * 1e6:.1f} ms per "
                    f"1,000 chars (memo hit rate {m['hit_rate']:.1%}); identical words {m['same_words']}/{m['texts']}, "
                    f"word counts {m['same_word_counts']}/{m['texts']}, decisions {m['same_decisions']}/{m['texts']} "
                    f"({m['kept']} kept)")
            # the rest of the recipe from the per-eojeol run, whose segmentation is small: subtracting whole-document
            # Kiwi (two large numbers, each noisy on a shared machine) left anything from 4x to 23x
            lines.append(f"  Kiwi on the bench documents: whole {bench['whole'] / base:.2f}x, per eojeol "
                         f"{bench['memo'] / base:.2f}x the plain loop; the recipe without segmentation "
                         f"{(full['datatrove_eojeol', 'again'] - bench['memo']) / base:.2f}x")
            datatrove_rep, our_rep = repetition_filters(docs)
            lines.append(f"  Gopher repetition filter: datatrove {datatrove_rep / base:.2f}x, ours {our_rep / base:.2f}x "
                         f"the plain loop ({datatrove_rep / our_rep:.1f}x faster, same decisions)")
        if "workers" in sections:
            load = os.getloadavg()[0]
            seg = args.workers_segmenter
            machine = machine_parallelism()
            # load the LID model here first: forked workers inherit it, an in-process run would pay. Kiwi cannot be
            # inherited (its thread is not forked): each of the 2 workers loads its own, ~0.9 s the 1-worker run skips
            full_recipe(docs[:20], Path(tmp) / "warm-up", seg)
            _, one, split_one = full_recipe(docs, Path(tmp) / "w", seg, tasks=2, workers=1, files=args.files)
            _, two, split_two = full_recipe(docs, Path(tmp) / "w", seg, tasks=2, workers=2, files=args.files)
            lines.append(f"2 workers vs 1 ({seg}, 2 tasks, {args.files} files; documents read per task {split_two}): "
                         f"{one / two:.2f}x faster by wall clock ({one:.1f} s vs {two:.1f} s; load average "
                         f"{load:.1f} before, {os.getloadavg()[0]:.1f} after, on {len(os.sched_getaffinity(0))} cores; the same machine "
                         f"ran 2 pure-Python processes {machine:.2f}x faster than 1)")
            assert split_one == split_two and min(split_two) > 0, (split_one, split_two)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
