"""The task kinds a suite may use, and how a task entry of a suite becomes a task object.

The table is explicit (no registration by import side effect): a kind not in it fails the suite at start.
Every task class is a config dataclass (fields documented by attribute docstrings, unknown keys are an
error) with ``evaluate(checkpoint, rejects) -> {"languages": {lang: metrics}, "breakdowns"?, "predictions"?}``
and class attributes PRIMARY (headline metric), HIGHER_IS_BETTER, VERSION (bumped when the numbers a
task computes change, which invalidates cached results).
"""

from __future__ import annotations

import glob as globlib
import hashlib
import json
from pathlib import Path

from ..config import from_dict, read_yaml, to_dict
from ..errors import UserError
from .generation import GenerationTask
from .harness import HarnessTask
from .multiple_choice import MultipleChoiceTask
from .perplexity import PerplexityTask
from .preference_task import PreferenceTask
from .reward_task import RewardTask
from .safety import SafetyTask

TASK_KINDS: dict[str, type] = {
    "perplexity": PerplexityTask,
    "multiple_choice": MultipleChoiceTask,
    "generation": GenerationTask,
    "reward": RewardTask,
    "preference": PreferenceTask,
    "safety": SafetyTask,
    "lm_eval_harness": HarnessTask,
}


def parse_task(entry: dict | str, suite_file: Path, index: int):
    """A suite's ``tasks[i]``: a path to a task YAML (relative to the suite) or an inline mapping."""
    if isinstance(entry, str):
        task_file = (suite_file.parent / entry) if not Path(entry).is_absolute() else Path(entry)
        data, where, base_dir = read_yaml(task_file), str(task_file), task_file.parent
    elif isinstance(entry, dict):
        data, where, base_dir = dict(entry), f"{suite_file}: tasks[{index}]", suite_file.parent
    else:
        raise UserError(f"{suite_file}: tasks[{index}] must be a task YAML path or a mapping with 'kind'")
    kind = data.get("kind")
    if kind not in TASK_KINDS:
        raise UserError(f"{where}: unknown task kind {kind!r}; known kinds: {', '.join(TASK_KINDS)}")
    data.setdefault("name", Path(entry).stem if isinstance(entry, str) else f"{kind}_{index}")
    task = from_dict(TASK_KINDS[kind], data, where)
    if getattr(task, "data", None) is not None:
        task.data.resolve(base_dir)
    if hasattr(task, "resolve"):
        task.resolve(base_dir)
    return task


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _data_files(pattern: str) -> list[Path]:
    path = Path(pattern)
    if path.is_dir():  # an XSafety root: one folder per language
        return sorted(p for p in path.rglob("*") if p.is_file())
    return sorted(Path(p) for p in globlib.glob(pattern, recursive=True) if Path(p).is_file())


def task_fingerprint(task, runtime_key: dict) -> str:
    """Hash of everything that decides a task's numbers: its config, data contents, judges/metrics, runtime."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"kind": task.kind, "version": task.VERSION, "config": to_dict(task),
                              "runtime": runtime_key}, sort_keys=True, default=str).encode())
    data = getattr(task, "data", None)
    for pattern in data.files if data is not None else []:
        for path in _data_files(pattern):
            digest.update(str(path).encode() + _file_digest(path).encode())
    if hasattr(task, "fingerprint_extra"):
        digest.update(task.fingerprint_extra().encode())
    return digest.hexdigest()[:16]


def check_unique_names(tasks: list, suite_file: Path) -> None:
    seen = set()
    for task in tasks:
        if task.name in seen:
            raise UserError(f"{suite_file}: two tasks are named {task.name!r}; give each task a unique 'name'")
        seen.add(task.name)
