"""`polyglot-llama eval`: run an evaluation suite on one or more checkpoints and write a comparative report.

A suite (YAML) lists tasks, each a task YAML path or an inline mapping with a ``kind``. Every task is
validated before any model loads: an unknown kind or key stops the run at start with one line. Then
each checkpoint runs each task; a result is cached under (checkpoint fingerprint, task fingerprint), so
rerunning after adding a checkpoint or editing one task recomputes only what changed. Per-checkpoint
failures (a model that does not load, a tokenizer larger than the model's embeddings, a data file that
does not exist) are recorded in the results and the report, the other pairs still run, and the command
exits 2 once every result is written, so scripts can tell a partial run from a complete one.

Outputs in ``output``: results.json, results.md, report.html + plots/*.png, predictions/ (generated
answers), rejects/ (records that could not be used, with reasons), cache/, eval.config.yaml.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from ..config import read_yaml, write_resolved_config
from ..errors import UserError
from ..io import RejectCounter, read_json, write_json, write_jsonl
from ..languages import normalize_language
from .checkpoints import Checkpoint, display_names
from .lm import Runtime
from .report import mean_primary, write_reports
from .stats import add_uncertainty
from .tasks import check_unique_names, parse_task, task_fingerprint

log = logging.getLogger(__name__)


@dataclass
class EvalConfig:
    suite: str = ""
    """Suite YAML, e.g. eval/default.yaml: {name, tasks: [task YAML paths or inline tasks]}."""
    model: list[str] = field(default_factory=list)
    """Checkpoint directories to evaluate and compare (repeat --model for several)."""
    output: str = ""
    """Directory for results.json, results.md, report.html, plots/, predictions/, rejects/ and the cache."""
    tasks: list[str] = field(default_factory=list)
    """Run only these tasks of the suite (by name); empty: all."""
    limit: int = 0
    """At most this many examples per language in every task (0 = each task's own setting); for quick runs."""
    batch_size: int = 8
    """Sequences per forward pass (and prompts per generation batch)."""
    max_length: int = 0
    """Context length in tokens (0 = the model's max_position_embeddings)."""
    device: str = "auto"
    """auto (CUDA when present), cpu, cuda, cuda:1, ..."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Weights dtype; auto: bf16 on GPUs that support it, fp32 on CPU."""
    cache_dir: str = ""
    """Result cache (default: <output>/cache); share one between output folders to reuse results."""
    refresh: bool = False
    """Recompute every (checkpoint, task) pair even when a cached result exists."""
    data_root: str = ""
    """Folder holding the published benchmark files that task files name as {data_root}/... (eval/multilingual.yaml)."""
    languages: list[str] = field(default_factory=list)
    """Evaluate only these languages in every task (empty: each task's own list, or all found)."""

    def __post_init__(self):
        if not self.suite:
            raise UserError("key 'suite' is required: a suite YAML such as eval/default.yaml")
        if not self.model:
            raise UserError("key 'model' is required: one or more checkpoint directories (--model A --model B)")
        if not self.output:
            raise UserError("key 'output' is required: the directory for the results and report")
        if self.batch_size < 1 or self.limit < 0 or self.max_length < 0:
            raise UserError("keys 'batch_size' (>= 1), 'limit' and 'max_length' (>= 0) are out of range")


def load_suite(path: str | Path, only: list[str] = (), data_root: str = "", languages: list[str] = ()) -> tuple[str, list]:
    """(suite name, task objects); every task is validated here, before any model is loaded."""
    path = Path(path)
    data = read_yaml(path)
    unknown = set(data) - {"name", "description", "tasks"}
    if unknown:
        raise UserError(f"{path}: unknown key '{sorted(unknown)[0]}'; a suite has: name, description, tasks")
    entries = data.get("tasks")
    if not isinstance(entries, list) or not entries:
        raise UserError(f"{path}: key 'tasks' must be a non-empty list of task YAML paths or task mappings")
    tasks = [parse_task(entry, path, i) for i, entry in enumerate(entries)]
    check_unique_names(tasks, path)
    if only:
        missing = sorted(set(only) - {t.name for t in tasks})
        if missing:
            raise UserError(f"--tasks {missing[0]!r} is not in {path}; its tasks: {', '.join(t.name for t in tasks)}")
        tasks = [t for t in tasks if t.name in only]
    for task in tasks:
        if getattr(task, "data", None) is not None:
            task.data.set_data_root(data_root, f"task '{task.name}'")
            if languages:
                task.data.languages = [normalize_language(code) for code in languages]
    return str(data.get("name") or path.stem), tasks


def _safe(name: str) -> str:
    return name.replace("/", "__")


def evaluate_pair(checkpoint: Checkpoint, task, runtime_key: dict, cache: Path, output: Path, refresh: bool) -> dict:
    """One (checkpoint, task) result: from the cache when unchanged, else computed and cached."""
    if checkpoint.fingerprint is None:
        return {"error": f"model could not be loaded: {checkpoint.error}", "cached": False}
    fingerprint = task_fingerprint(task, runtime_key)
    cached = cache / checkpoint.fingerprint / f"{fingerprint}.json"
    if cached.is_file() and not refresh:
        return {**read_json(cached), "cached": True}
    rejects = RejectCounter()
    started = time.perf_counter()
    log.info("eval: %s on %s", task.name, checkpoint.name)
    try:
        outcome = task.evaluate(checkpoint, rejects)
    except UserError as e:
        return {"error": str(e), "problems": rejects.by_reason(), "cached": False}
    except Exception as e:  # a bug or an unforeseen input: this pair fails, the other pairs' results are kept
        log.exception("eval: %s on %s failed", task.name, checkpoint.name)
        message = f"{type(e).__name__}: {e}".splitlines()[0]
        return {"error": f"unexpected failure (traceback in the log): {message}", "problems": rejects.by_reason(),
                "cached": False}
    predictions = outcome.pop("predictions", None)
    result = {**outcome, "problems": rejects.by_reason(), "seconds": round(time.perf_counter() - started, 3),
              "task_fingerprint": fingerprint}
    if predictions is not None:
        write_jsonl(output / "predictions" / _safe(checkpoint.name) / f"{task.name}.jsonl", predictions)
    if rejects.count:
        write_jsonl(output / "rejects" / _safe(checkpoint.name) / f"{task.name}.jsonl", rejects.rejected)
    write_json(cached, result)
    return {**result, "cached": False}


def run(cfg: EvalConfig) -> dict:
    suite_name, tasks = load_suite(cfg.suite, cfg.tasks, cfg.data_root, cfg.languages)
    if cfg.limit:
        for task in tasks:
            if getattr(task, "data", None) is not None:
                task.data.limit = cfg.limit  # scored examples per language; few-shot demonstrations are extra
            elif hasattr(task, "limit"):
                task.limit = cfg.limit
    output = Path(cfg.output)
    cache = Path(cfg.cache_dir) if cfg.cache_dir else output / "cache"
    runtime = Runtime(device=cfg.device, dtype=cfg.dtype, batch_size=cfg.batch_size, max_length=cfg.max_length)
    # batch_size and device do not change the numbers beyond float round-off, so they are not in the key.
    runtime_key = {"dtype": str(runtime.torch_dtype()), "max_length": cfg.max_length}
    checkpoints = [Checkpoint(path, name, runtime) for path, name in zip(cfg.model, display_names(cfg.model))]
    per_task: dict[str, dict[str, dict]] = {task.name: {} for task in tasks}
    for checkpoint in checkpoints:
        for task in tasks:
            per_task[task.name][checkpoint.name] = evaluate_pair(checkpoint, task, runtime_key, cache, output, cfg.refresh)
        checkpoint.release()
    results = {
        "suite": suite_name,
        "suite_file": str(cfg.suite),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "models": [{"name": c.name, "path": c.path, "fingerprint": c.fingerprint, "error": c.error} for c in checkpoints],
        "tasks": [{"name": t.name, "kind": t.kind, "primary": t.PRIMARY, "higher_is_better": t.HIGHER_IS_BETTER,
                   "results": per_task[t.name]} for t in tasks],
    }
    add_uncertainty(results)
    write_json(output / "results.json", results)
    report = write_reports(results, output)
    write_resolved_config(cfg, output, "eval")
    pairs = [r for t in results["tasks"] for r in t["results"].values()]
    return {
        "output": str(output),
        "report": str(report),
        "models": [c.name for c in checkpoints],
        "tasks": [t.name for t in tasks],
        "computed": sum(not r["cached"] and "error" not in r for r in pairs),
        "reused": sum(r["cached"] for r in pairs),
        "errors": [f"{t['name']} / {m}: {r['error']}" for t in results["tasks"] for m, r in t["results"].items() if "error" in r],
        # (checkpoint, task) pairs without a result: the CLI exits 2 when there is any (results are still written).
        "failed": sum("error" in r for r in pairs),
        "headline": {t["name"]: {m: mean_primary(r, t["primary"]) for m, r in t["results"].items()} for t in results["tasks"]},
    }
