"""Task kind ``lm_eval_harness``: lm-evaluation-harness tasks (XNLI, XCOPA, Belebele, ...) in the same report.

Optional: it runs only where the ``lm_eval`` package is installed and can reach its datasets; otherwise the
suite stops at start with a one-line error. Each harness task becomes one row of the report, its language
taken from ``languages`` ({task: lang}) or from the task name's last ``_xx`` part (``xnli_de`` → de).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from ..errors import UserError
from ..io import RejectCounter
from ..languages import normalize_language

NOT_INSTALLED = ("kind 'lm_eval_harness' needs lm-evaluation-harness, which is not installed; "
                 "pip install lm-eval (its datasets download from the Hugging Face Hub), or remove the task")


@dataclass
class HarnessTask:
    name: str = ""
    """Task name in reports."""
    kind: Literal["lm_eval_harness"] = "lm_eval_harness"
    """Task kind."""
    tasks: list[str] = field(default_factory=list)
    """lm-evaluation-harness task names, e.g. [xnli_de, xnli_en, belebele_kor_Hang]."""
    languages: dict[str, str] = field(default_factory=dict)
    """Language of each harness task, where its name does not end in a language code."""
    num_fewshot: int = 0
    """Demonstrations per prompt."""
    limit: int = 0
    """At most this many examples per harness task (0 = all)."""
    metric: str = "acc"
    """Harness metric shown as the headline (acc, acc_norm, exact_match, ...)."""
    include_path: str = ""
    """Folder of your own harness task YAMLs (e.g. reading local JSONL with dataset_path: json); relative to the suite."""

    HIGHER_IS_BETTER: ClassVar[bool] = True
    VERSION: ClassVar[int] = 1

    def __post_init__(self):
        if importlib.util.find_spec("lm_eval") is None:
            raise UserError(f"task '{self.name}': {NOT_INSTALLED}")
        if not self.tasks:
            raise UserError(f"task '{self.name}': key 'tasks' needs at least one lm-evaluation-harness task name")
        self.PRIMARY = self.metric

    def resolve(self, base_dir: Path) -> None:
        if self.include_path and not Path(self.include_path).is_absolute():
            self.include_path = str(base_dir / self.include_path)
        if self.include_path and not Path(self.include_path).is_dir():
            raise UserError(f"task '{self.name}': include_path {self.include_path} is not a folder of harness task YAMLs")

    def fingerprint_extra(self) -> str:
        """Your own task YAMLs (and the local data files they name) decide the numbers."""
        if not self.include_path:
            return ""
        return "".join(p.read_text(encoding="utf-8") for p in sorted(Path(self.include_path).rglob("*.yaml")))

    def language_of(self, task: str) -> str:
        if task in self.languages:
            return normalize_language(self.languages[task])
        try:
            return normalize_language(task.rsplit("_", 1)[-1])
        except UserError:
            return task

    def evaluate(self, checkpoint, rejects: RejectCounter) -> dict:
        import lm_eval
        from lm_eval.models.huggingface import HFLM

        lm = checkpoint.language_model()
        from lm_eval.tasks import TaskManager

        harness_lm = HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=checkpoint.runtime.batch_size)
        manager = TaskManager(include_path=self.include_path or None)
        unknown = [t for t in self.tasks if t not in manager.all_tasks]
        if unknown:
            raise UserError(f"task '{self.name}': lm-evaluation-harness has no task {unknown[0]!r}"
                            + (f" (nor {self.include_path})" if self.include_path else "; give include_path for your own YAMLs"))
        output = lm_eval.simple_evaluate(model=harness_lm, tasks=self.tasks, num_fewshot=self.num_fewshot,
                                         limit=self.limit or None, task_manager=manager)
        results = {}
        for task, metrics in output["results"].items():
            # Harness keys look like "acc,none" (metric, filter); stderr entries are dropped.
            values = {k.split(",")[0]: v for k, v in metrics.items() if isinstance(v, (int, float)) and "stderr" not in k}
            results[self.language_of(task)] = {**values, "n": int(output.get("n-samples", {}).get(task, {}).get("effective", 0))}
        return {"languages": results}
