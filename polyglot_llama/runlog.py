"""Quiet console, complete log file: what the CLI sets up around a stage.

The console gets the stage's one progress bar (its phases take turns on it: `progress`), warnings and errors,
and its one summary line. Everything else (our INFO lines, transformers' and datatrove's detail, datatrove's
warnings, transformers' reports of unused checkpoint weights, datasets', transformers' and datatrove's own
progress bars, Python warnings, the traceback of an unexpected error) goes to ``OUTPUT/<stage>.log``.
``--verbose`` brings the detail back to the console. Under torchrun / accelerate launch only the main process
(RANK 0) writes that log and the summary; another rank logs to ``OUTPUT/<stage>.rank<N>.log`` and shows only
its errors.

Only the CLI calls `setup`; `close` puts every library setting it changed back, so a program that calls
``cli.main`` keeps its own logging and progress-bar settings afterwards.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from . import progress

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_UNDO: list[Callable[[], None]] = []  # how to put back each library setting the current run changed


class _LazyFileHandler(logging.FileHandler):
    """Creates the file (and the output folder) at the first record: a stage that fails before logging
    anything leaves no folder behind."""

    def _open(self):
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


def process_rank() -> int:
    """This process's rank under torchrun / accelerate launch (both set RANK); 0 when run alone."""
    return int(os.environ.get("RANK", "0"))


def log_file_for(stage: str, output: str | None) -> Path:
    """``OUTPUT/<stage>.log`` (``<stage>.rank<N>.log`` on rank N > 0), or a file in the temp folder for
    stages without an output folder."""
    rank = process_rank()
    name = f"{stage.replace(' ', '_')}{f'.rank{rank}' if rank else ''}.log"
    if output:
        return Path(output) / name
    return Path(tempfile.gettempdir()) / f"polyglot-llama-{time.strftime('%Y%m%d-%H%M%S')}-{name}"


def setup(stage: str, output: str | None, verbose: bool) -> Path:
    """Route logging for one CLI run; returns the log file's path."""
    log_file = log_file_for(stage, output)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.INFO)
    console = logging.StreamHandler(sys.stderr)
    # Another rank repeats the main process's warnings: its console shows errors only.
    console.setLevel(logging.INFO if verbose else logging.WARNING if process_rank() == 0 else logging.ERROR)
    console.setFormatter(logging.Formatter(_FORMAT))
    if not verbose:
        console.addFilter(_unused_weights_report_to_file_only)
    to_file = _LazyFileHandler(log_file, encoding="utf-8", delay=True)
    to_file.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(console)
    root.addHandler(to_file)
    logging.captureWarnings(True)
    if not verbose:
        # Python warnings (deprecations from libraries) are detail: file only.
        warnings_logger = logging.getLogger("py.warnings")
        warnings_logger.propagate = False
        warnings_logger.handlers = [to_file]
    _when_imported("transformers", lambda _: _route_transformers(verbose))
    if not verbose:
        _when_imported("datasets", _quiet_datasets)
    _route_datatrove(stage, log_file, verbose)
    progress.start_stage()
    return log_file


def _unused_weights_report_to_file_only(record: logging.LogRecord) -> bool:
    """transformers' multi-line "LlamaModel LOAD REPORT" that lists only UNEXPECTED keys (checkpoint weights
    the model does not use: the LM head when PPO's critic loads the trunk of a causal-LM checkpoint) is
    detail, kept in the log file. A report of MISSING (randomly initialised), MISMATCH or CONVERSION keys
    stays on the console."""
    if not record.name.startswith("transformers") or record.levelno >= logging.ERROR:
        return True
    message = record.getMessage()
    return "LOAD REPORT" not in message or any(word in message for word in ("MISSING", "MISMATCH", "CONVERSION"))


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``action(module)`` right after the first import of the top-level package ``name``: the stages
    import transformers and datasets lazily, after `setup`, and importing them here would cost seconds."""

    def __init__(self, name: str, action: Callable):
        self.name, self.action = name, action

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # one shot: the regular finders locate the package
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            execute = spec.loader.exec_module

            def execute_then_act(module):
                execute(module)
                self.action(module)

            spec.loader.exec_module = execute_then_act
        return spec


def _when_imported(name: str, action: Callable) -> None:
    """``action(module)`` now if ``name`` is imported already, else at its first import during this run."""
    if name in sys.modules:
        action(sys.modules[name])
        return
    hook = _AfterImport(name, action)
    sys.meta_path.insert(0, hook)

    def undo() -> None:
        if hook in sys.meta_path:  # the run never imported the package
            sys.meta_path.remove(hook)

    _UNDO.append(undo)


def _route_transformers(verbose: bool) -> None:
    """transformers logs through its own stderr handler: send it to ours (file always, console if verbose).
    Its progress bars ("Loading weights", checkpoint shards, and huggingface_hub's downloads) stay off the
    console: the stage's own bar is the one that counts."""
    import huggingface_hub.utils as hub_utils
    from transformers.utils import logging as hf_logging

    hf_logging.get_verbosity()  # creates transformers' stderr handler now, so the snapshot below holds it
    library = logging.getLogger("transformers")
    level, handlers, propagate = library.level, list(library.handlers), library.propagate
    bars_on, hub_bars_off = hf_logging.is_progress_bar_enabled(), hub_utils.are_progress_bars_disabled()

    def undo() -> None:
        library.setLevel(level)
        library.handlers = handlers
        library.propagate = propagate
        if bars_on:
            hf_logging.enable_progress_bar()  # also turns huggingface_hub's back on
        if hub_bars_off:
            hub_utils.disable_progress_bars()

    _UNDO.append(undo)
    hf_logging.set_verbosity_info()
    hf_logging.disable_default_handler()
    hf_logging.enable_propagation()
    if not verbose:
        hf_logging.disable_progress_bar()


def _quiet_datasets(datasets) -> None:
    """datasets' bars ("Map", "Filter", "Saving the dataset") are detail of the stage's data preparation."""
    if not datasets.are_progress_bars_disabled():
        datasets.disable_progress_bars()
        _UNDO.append(datasets.enable_progress_bars)


_DATATROVE_ORIGINALS: dict = {}


def _route_datatrove(stage: str, log_file: Path, verbose: bool) -> None:
    """datatrove logs through loguru and re-adds an INFO stderr sink for every task: its stderr sink shows
    errors only (INFO with --verbose) and everything goes to the run's log file, its warnings too (e.g. "No
    .remove file for rank=0", which only means no near-duplicates). Its per-task logs stay in the pipeline's
    own logging folder. Its tqdm bars ("Initializing pq...", "Reading dup files", unnamed dedup bars) stay off
    the console: the corpus reader's "documents read" bar is the stage's one bar."""
    if "datatrove" not in sys.modules and stage != "demo":  # the demo imports corpus build only later
        return
    import datatrove.executor.base as executor_base
    import datatrove.utils.logging as dt_logging
    from loguru import logger

    level = "INFO" if verbose else "ERROR"
    _DATATROVE_ORIGINALS.setdefault("setup_default_logger", dt_logging.setup_default_logger)
    _DATATROVE_ORIGINALS.setdefault("add_task_logger", executor_base.add_task_logger)

    def default_sinks() -> None:
        logger.remove()
        logger.add(sys.stderr, level=level, colorize=False)
        logger.add(str(log_file), level="DEBUG", colorize=False, delay=True)

    def add_task_logger(logging_dir, rank, local_rank=0, node_rank=-1):
        # datatrove's own version adds an INFO stderr sink and logs to it at once; same files, our levels.
        logger.remove()
        logfile = logging_dir.open(f"logs/task_{rank:05d}.log", "w")
        logger.add(logfile, level="DEBUG", colorize=False)
        logger.add(sys.stderr, level=level if local_rank == 0 else "ERROR", colorize=False)
        logger.add(str(log_file), level="DEBUG", colorize=False, delay=True)
        if not verbose:
            _quiet_datatrove_bars()  # modules the pipeline imported after setup
        logger.info(f"Launching pipeline for {rank=}")
        return logfile

    dt_logging.setup_default_logger = default_sinks
    if not verbose:
        _quiet_datatrove_bars()
    for module in (executor_base, sys.modules.get("datatrove.executor.jobs")):
        if module is not None and hasattr(module, "add_task_logger"):
            module.add_task_logger = add_task_logger
    default_sinks()


def _quiet_datatrove_bars() -> None:
    """Swap the ``tqdm`` that datatrove's modules imported (``from tqdm import tqdm``) for a disabled one."""
    from tqdm import tqdm

    class QuietBar(tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "disable": True})

    for name, module in list(sys.modules.items()):
        if name.startswith("datatrove.") and getattr(module, "tqdm", None) is tqdm:
            module.tqdm = QuietBar
            _UNDO.append(lambda module=module: setattr(module, "tqdm", tqdm))


def close() -> None:
    """Close the stage's bar, flush and detach the log file (tests call `main` many times in one process)."""
    progress.end_stage()
    root = logging.getLogger()
    for handler in list(root.handlers):
        handler.close()
        root.removeHandler(handler)
    logging.getLogger("py.warnings").propagate = True
    logging.getLogger("py.warnings").handlers = []
    while _UNDO:
        _UNDO.pop()()
    if _DATATROVE_ORIGINALS:
        import datatrove.executor.base as executor_base
        import datatrove.utils.logging as dt_logging

        dt_logging.setup_default_logger = _DATATROVE_ORIGINALS["setup_default_logger"]
        for module in (executor_base, sys.modules.get("datatrove.executor.jobs")):
            if module is not None and hasattr(module, "add_task_logger"):
                module.add_task_logger = _DATATROVE_ORIGINALS["add_task_logger"]
        dt_logging.setup_default_logger()
