"""`polyglot-llama corpus build`: a recipe → datatrove stages → kept/, rejected/, stats.json, stats.md.

Stages (each a datatrove executor with its own completion markers under ``work/logs/<stage>/``, so a killed
run resumes without redoing finished tasks; the same stages run on local processes, Slurm or Ray):

1. ``filter`` (tasks): read → LID tag → recipe filters → PII → ``work/filtered/<rank>.jsonl.zst``
   (+ exact-dedup hashes of normalised text)
2. ``exact_find`` (1 task): datatrove `ExactFindDedups`
3. ``minhash_signatures`` (tasks): filtered shard minus exact copies → `FastMinhashDedupSignature` (datatrove's signatures, faster)
4. ``minhash_buckets`` (num_buckets tasks), 5. ``minhash_clusters`` (1 task): datatrove's LSH stages
6. ``write`` (tasks): filtered shard → exact dedup → MinHash dedup (cluster size kept) → ``kept/``
7. ``report`` (1 task): ``stats.json`` + ``stats.md``
"""

from __future__ import annotations

import json
import shutil
import sys
from copy import deepcopy
from pathlib import Path

import orjson
from datatrove.data import Document
from datatrove.executor import LocalPipelineExecutor
from datatrove.executor.base import ExecutorJSONEncoder
from datatrove.pipeline.dedup import MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter
from datatrove.pipeline.dedup.exact_dedup import ExactDedupConfig, ExactDedupFilter, ExactDedupSignature
from datatrove.pipeline.dedup.exact_dedup import ExactFindDedups
from datatrove.pipeline.writers.jsonl import JsonlWriter
from datatrove.pipeline.writers.parquet import ParquetWriter
from datatrove.utils.logging import logger
from datatrove.utils.stats import PipelineStats

from ..config import to_dict, write_resolved_config
from ..errors import UserError
from ..io import read_json, write_json
from .accounting import AccountedDatatroveFilter
from .language_steps import ForeignParagraphFilter, LanguageFilter, LanguageTagger
from .lid import load_lid_model
from .pii import PiiMasker
from .quality_steps import DomainBlocklistFilter, PerLanguageFilter, read_blocklist
from .reader import RecordReader, ShardReader, ShardWriter, expand_corpus_inputs
from .recipe import DEDUP_STEPS, CorpusBuildConfig, for_language
from .shingles import FastMinhashDedupSignature
from .simplify import simplify_text
from .words import ScriptWordTokenizer, word_tokenizer

__all__ = ["CorpusBuildConfig", "run"]

# Keys that may change between a run and its resumption without invalidating finished tasks.
_RUNTIME_KEYS = ("executor", "workers", "resume", "slurm", "ray")


def normalised_text(doc: Document) -> str:
    """What exact dedup hashes: lower-cased, whitespace-collapsed, punctuation-free text (datatrove's, faster)."""
    return simplify_text(doc.text)


def _kept_record(writer, doc: Document) -> dict:
    metadata = dict(doc.metadata)
    return {
        "id": doc.id,
        "text": doc.text,
        "lang": metadata.pop("language"),
        "language_score": metadata.pop("language_score"),
        "duplicate_count": metadata.pop("duplicate_count", 0),  # exact copies removed
        "minhash_cluster_size": metadata.pop("minhash_cluster_size", 1),  # near-duplicate cluster size
        "source_file": metadata.pop("source_file", ""),
        "metadata": metadata,
    }


def _kept_parquet_record(writer, doc: Document) -> dict:
    record = _kept_record(writer, doc)
    record["metadata"] = json.dumps(record["metadata"], ensure_ascii=False, default=str)
    return record  # fixed columns: Parquet needs one schema for every batch


def _filter_steps(cfg: CorpusBuildConfig, files: list[str], rejected: str) -> list:
    """Reader, LID tagger and the recipe's filters, in recipe order."""
    def per_language(section) -> dict[str, dict]:
        return {lang: for_language(section, lang) for lang in ["default", *cfg.languages]}

    def ngram_pairs(params: dict[str, dict]) -> dict[str, dict]:
        for p in params.values():  # YAML gives [[2, 0.2], ...]; datatrove wants ((2, 0.2), ...) with int n
            p["top_n_grams"] = tuple((int(n), float(f)) for n, f in p["top_n_grams"])
            p["dup_n_grams"] = tuple((int(n), float(f)) for n, f in p["dup_n_grams"])
        return params

    steps = [RecordReader(files, cfg.text_field, cfg.id_field, rejected), LanguageTagger(cfg.lid.model)]
    for name in cfg.steps:
        if name == "language":
            lid = per_language(cfg.lid)
            steps.append(LanguageFilter(cfg.languages, {lang: lid[lang]["threshold"] for lang in cfg.languages},
                                        {lang: lid[lang]["min_script_ratio"] for lang in cfg.languages}, rejected))
        elif name == "foreign_paragraphs":
            steps.append(ForeignParagraphFilter(cfg.lid.model, cfg.lid.paragraph_threshold,
                                                cfg.lid.paragraph_min_chars, rejected))
        elif name == "blocklist":
            steps.append(DomainBlocklistFilter(read_blocklist(cfg.blocklist.file), cfg.blocklist.url_field, rejected))
        elif name == "gopher_repetition":
            steps.append(PerLanguageFilter(name, ngram_pairs(per_language(cfg.gopher_repetition)),
                                           cfg.segmenter, rejected))
        elif name in ("gopher_quality", "fineweb_quality"):
            steps.append(PerLanguageFilter(name, per_language(getattr(cfg, name)), cfg.segmenter, rejected))
        elif name == "pii":
            steps.append(PiiMasker(cfg.pii.emails, cfg.pii.ips, cfg.pii.phones))
    return steps


def _kept_writers(cfg: CorpusBuildConfig, out: Path) -> list:
    writers = [JsonlWriter(str(out / "kept"), output_filename="${rank}.jsonl.gz", adapter=_kept_record)]
    if cfg.parquet:
        writers.append(ParquetWriter(str(out / "kept"), output_filename="${rank}.parquet", adapter=_kept_parquet_record))
    return writers


def build_stages(cfg: CorpusBuildConfig, files: list[str]) -> list[tuple[str, list, int]]:
    """The (stage name, pipeline, number of tasks) list for ``cfg``."""
    out, work = Path(cfg.output), Path(cfg.output) / "work"
    rejected, filtered = str(out / "rejected"), str(work / "filtered")
    exact = "exact_dedup" in cfg.steps
    minhash = "minhash_dedup" in cfg.steps
    exact_config = ExactDedupConfig(content_getter=normalised_text)
    minhash_config = MinhashConfig(n_grams=cfg.minhash.n_grams, num_buckets=cfg.minhash.num_buckets,
                                   hashes_per_bucket=cfg.minhash.hashes_per_bucket, seed=cfg.minhash.seed)
    exact_sigs, exact_dups = str(work / "exact" / "sigs"), str(work / "exact" / "dups")
    minhash_dir = work / "minhash"

    first = _filter_steps(cfg, files, rejected)
    if not (exact or minhash):
        return [("filter", first + _kept_writers(cfg, out), cfg.tasks)]
    first.append(ShardWriter(filtered))
    if exact:
        first.append(ExactDedupSignature(exact_sigs, exact_config))
    stages = [("filter", first, cfg.tasks)]
    if exact:
        stages.append(("exact_find", [ExactFindDedups(exact_sigs, exact_dups, exact_config)], 1))
    if minhash:
        signature_input = [ShardReader(filtered)] + ([ExactDedupFilter(exact_dups, exact_config)] if exact else [])
        stages += [
            ("minhash_signatures", signature_input + [FastMinhashDedupSignature(
                str(minhash_dir / "signatures"), minhash_config, language=ScriptWordTokenizer())], cfg.tasks),
            ("minhash_buckets", [MinhashDedupBuckets(str(minhash_dir / "signatures"), str(minhash_dir / "buckets"),
                                                     config=minhash_config)], cfg.minhash.num_buckets),
            ("minhash_clusters", [MinhashDedupCluster(str(minhash_dir / "buckets"), str(minhash_dir / "clusters"),
                                                      config=minhash_config, save_cluster_size=True)], 1),
        ]
    final = [ShardReader(filtered)]
    if exact:
        final.append(AccountedDatatroveFilter(ExactDedupFilter(exact_dups, exact_config),
                                              "exact_dedup", "exact_duplicate", rejected))
    if minhash:
        final.append(AccountedDatatroveFilter(MinhashDedupFilter(str(minhash_dir / "clusters"), load_cluster_sizes=True),
                                              "minhash_dedup", "near_duplicate", rejected))
    stages.append(("write", final + _kept_writers(cfg, out), cfg.tasks))
    return stages


def accounted_steps(cfg: CorpusBuildConfig) -> list[str]:
    """Names of the steps that appear in the statistics, in the order documents pass them."""
    filters = [s for s in cfg.steps if s not in DEDUP_STEPS]
    return ["read", "lid", *filters, *(s for s in DEDUP_STEPS if s in cfg.steps)]


class _LocalExecutor(LocalPipelineExecutor):
    """datatrove's local executor, writing its ``executor.json`` with orjson, with no process to spare for one worker.

    datatrove's ``json.dump(..., indent=4)`` runs the pure-Python encoder over every stage's description,
    including the stages it depends on: 7 files, about 40 ms of CPU each in the parent process before each
    stage starts, 5 % of a 3,000-document Korean build. Same content (datatrove's encoder supplies what
    JSON cannot express), indented by 2.

    With one worker, datatrove's ``run`` still starts a ``multiprocess.Manager`` (a forked server process) to
    hand out local ranks through a queue. Forking a parent that holds the LID model and Kiwi copies its page
    tables: 26 ms of this process's CPU per stage (cProfile), 7 stages a build, about 4 % of a 3,000-document
    Korean build. One worker runs its tasks here in order, as local rank 0, with nothing to hand out.
    """

    def run(self):
        if self.workers != 1:
            return super().run()
        if self.depends and not self.depends._launched:
            self.depends.run()  # in its own way: a dependency may have several workers
        self._launched = True
        ranks = self.get_incomplete_ranks(range(self.local_rank_offset, self.local_rank_offset + self.local_tasks))
        if not ranks:
            logger.info(f"Not doing anything as all {self.local_tasks} tasks have already been completed.")
            return None
        self.save_executor_as_json()
        pipeline, stats = self.pipeline, PipelineStats()
        for rank in ranks:
            self.pipeline = deepcopy(pipeline)  # a task's steps keep state (open files, counters): fresh ones each
            stats += self._run_for_rank(rank, 0)
        self.pipeline = pipeline
        with self.logging_dir.open("stats.json", "wt") as f:
            stats.save_to_disk(f)
        logger.success(stats.get_repr(f"All {self.local_tasks} tasks"))
        return stats

    def save_executor_as_json(self, indent: int = 4):
        text = orjson.dumps(self, default=ExecutorJSONEncoder().default,
                            option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
        with self.logging_dir.open("executor.json", "wb") as f:
            f.write(text)


def _executor(cfg: CorpusBuildConfig, name: str, pipeline: list, tasks: int, logs: Path, depends):
    logging_dir = str(logs / name)
    skip_completed = name != "report"  # the report is cheap and must reflect tasks redone on resume
    if cfg.executor == "local":
        # fork, not datatrove's forkserver: a forkserver worker re-imports everything and reloads the LID model and
        # segmenters in every stage (about 9 s of wall clock per build on 2 cores, so 2 workers were slower than
        # 1); forked workers share what this process loaded. macOS keeps forkserver (fork is unsafe there).
        start_method = "fork" if sys.platform == "linux" else "forkserver"
        return _LocalExecutor(pipeline, tasks=tasks, workers=min(cfg.local_workers, tasks), logging_dir=logging_dir,
                              depends=depends, skip_completed=skip_completed, start_method=start_method)
    if cfg.executor == "slurm":
        from datatrove.executor import SlurmPipelineExecutor

        return SlurmPipelineExecutor(
            pipeline, tasks=tasks, time=cfg.slurm.time, partition=cfg.slurm.partition,
            cpus_per_task=cfg.slurm.cpus_per_task, mem_per_cpu_gb=cfg.slurm.mem_per_cpu_gb,
            workers=cfg.workers, job_name=f"corpus_{name}", env_command=cfg.slurm.env_command or None,
            logging_dir=logging_dir, depends=depends, skip_completed=skip_completed)
    try:
        from datatrove.executor.ray import RayPipelineExecutor
        import ray
    except ImportError:
        raise UserError("executor ray needs Ray: pip install 'polyglot-llama[ray]'") from None
    if not ray.is_initialized():
        try:
            ray.init(address=cfg.ray.address or None, log_to_driver=False)
        except ConnectionError as e:
            raise UserError(f"ray.address {cfg.ray.address!r}: {e}; start the cluster with `ray start --head`") from None
    # datatrove's Ray executor launches min(workers, tasks) jobs at once: -1 would launch none
    workers = tasks if cfg.workers == -1 else min(cfg.workers, tasks)
    return RayPipelineExecutor(pipeline, tasks=tasks, workers=workers, depends=depends, logging_dir=logging_dir,
                               skip_completed=skip_completed, cpus_per_task=cfg.ray.cpus_per_task,
                               mem_per_cpu_gb=cfg.ray.mem_per_cpu_gb)


def _cache_loguru_lib_dirs() -> None:
    """Make loguru's per-handler library-folder scan run once per `sys.path`, not once per handler.

    datatrove adds three loguru handlers per task (20+ tasks per build), and each `logger.add` builds an
    exception formatter that expands every sysconfig scheme's paths (``_get_lib_dirs``): about 10 ms of CPU
    per handler, a few percent of a Korean build of 3,000 documents. The result depends only on sysconfig
    and `sys.path`, so it is kept per `sys.path`. Skipped if loguru no longer has that method.
    """
    from loguru import _better_exceptions

    formatter = getattr(_better_exceptions, "ExceptionFormatter", None)
    scan = getattr(formatter, "_get_lib_dirs", None)
    if scan is None or getattr(scan, "cached_per_sys_path", False):
        return
    results: dict[tuple[str, ...], list[str]] = {}

    def lib_dirs() -> list[str]:
        key = tuple(sys.path)
        if key not in results:
            results[key] = scan()
        return list(results[key])

    lib_dirs.cached_per_sys_path = True
    lib_dirs.__wrapped__ = scan
    formatter._get_lib_dirs = staticmethod(lib_dirs)


def _prepare_output(cfg: CorpusBuildConfig, out: Path) -> None:
    """Start over (resume: false) or check that a previous run in ``out`` used the same recipe."""
    fingerprint_file = out / "work" / "recipe.json"
    fingerprint = {k: v for k, v in to_dict(cfg).items() if k not in _RUNTIME_KEYS}
    if not cfg.resume:
        for name in ("kept", "rejected", "work", "stats.json", "stats.md"):
            path = out / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    elif fingerprint_file.is_file():
        previous = read_json(fingerprint_file)
        changed = sorted(k for k in fingerprint.keys() | previous.keys() if fingerprint.get(k) != previous.get(k))
        if changed:
            raise UserError(f"{out} holds a run with a different recipe ('{changed[0]}' differs); use a new "
                            "--output, or --resume false to delete it and start over")
    write_json(fingerprint_file, fingerprint)


def run(cfg: CorpusBuildConfig) -> dict:
    if not cfg.input:
        raise UserError("input: give the raw text, e.g. --input 'raw/*.jsonl.gz'")
    if not cfg.output:
        raise UserError("output: give an output directory, e.g. --output corpus/ko")
    files = expand_corpus_inputs(cfg.input)
    model = load_lid_model(cfg.lid.model or None)  # fetches the default once, before any worker starts
    unknown = [lang for lang in cfg.languages if lang not in set(model.label_codes.values())]
    if unknown:
        raise UserError(f"languages: the LID model {model.path.name} cannot recognise {unknown[0]!r}; "
                        "use a model that covers it (lid.model) or fix the code")
    for language in cfg.languages:  # optional segmenters: a missing package fails now, not inside a task
        word_tokenizer(language, cfg.segmenter)
    out = Path(cfg.output)
    _prepare_output(cfg, out)
    write_resolved_config(cfg, out, "corpus build")

    stages = build_stages(cfg, files)
    logs = out / "work" / "logs"
    _cache_loguru_lib_dirs()  # before the executors fork their workers
    from .report import ReportStep

    meta = {"output": str(out), "languages": cfg.languages, "input_files": len(files), "recipe_steps": cfg.steps}
    stages.append(("report", [ReportStep(str(out), str(logs), [s[0] for s in stages], accounted_steps(cfg), meta)], 1))
    executor = None
    for name, pipeline, tasks in stages:
        executor = _executor(cfg, name, pipeline, tasks, logs, executor)
    executor.run()  # runs (or submits) every stage it depends on first
    stats_file = out / "stats.json"
    if not stats_file.is_file():  # Slurm: submitted, the report stage writes it when the jobs finish
        return {"output": str(out), "executor": cfg.executor, "submitted_stages": [s[0] for s in stages]}
    report = read_json(stats_file)
    return {key: report[key] for key in ("output", "documents_in", "documents_kept", "documents_rejected",
                                         "characters_in", "characters_kept", "kept_by_language",
                                         "quarantined_files", "quarantined_bytes")} | {
        "stats": str(stats_file), "kept": str(out / "kept"), "rejected": str(out / "rejected")}
