"""Quiet console, complete log file: what the CLI sets up around a stage.

The console gets the stage's progress bar, warnings and errors, and its one summary line. Everything else
(our INFO lines, transformers' and datatrove's detail, Python warnings, the traceback of an unexpected
error) goes to ``OUTPUT/<stage>.log``. ``--verbose`` brings the detail back to the console.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _LazyFileHandler(logging.FileHandler):
    """Creates the file (and the output folder) at the first record: a stage that fails before logging
    anything leaves no folder behind."""

    def _open(self):
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


def log_file_for(stage: str, output: str | None) -> Path:
    """``OUTPUT/<stage>.log``, or a file in the temp folder for stages without an output folder."""
    name = f"{stage.replace(' ', '_')}.log"
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
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    console.setFormatter(logging.Formatter(_FORMAT))
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
    _route_transformers(stage, verbose)
    _route_datatrove(stage, log_file, verbose)
    return log_file


def _route_transformers(stage: str, verbose: bool) -> None:
    """transformers logs through its own stderr handler: send it to ours (file always, console if verbose)."""
    if not (stage == "demo" or "torch" in sys.modules or "transformers" in sys.modules):
        return  # a stage without models (corpus build): importing transformers would only cost a second
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_info()
    hf_logging.disable_default_handler()
    hf_logging.enable_propagation()
    if not verbose:
        hf_logging.disable_progress_bar()  # the "Loading weights" bar: the stage's own bar is the one that counts
    if "datasets" in sys.modules and not verbose:
        import datasets

        datasets.disable_progress_bars()


_DATATROVE_ORIGINALS: dict = {}


def _route_datatrove(stage: str, log_file: Path, verbose: bool) -> None:
    """datatrove logs through loguru and re-adds an INFO stderr sink for every task; keep its stderr sink at
    WARNING (INFO with --verbose) and copy everything to the run's log file. Its per-task logs stay in the
    pipeline's own logging folder."""
    if "datatrove" not in sys.modules and stage != "demo":  # the demo imports corpus build only later
        return
    import datatrove.executor.base as executor_base
    import datatrove.utils.logging as dt_logging
    from loguru import logger

    level = "INFO" if verbose else "WARNING"
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
        logger.info(f"Launching pipeline for {rank=}")
        return logfile

    dt_logging.setup_default_logger = default_sinks
    for module in (executor_base, sys.modules.get("datatrove.executor.jobs")):
        if module is not None and hasattr(module, "add_task_logger"):
            module.add_task_logger = add_task_logger
    default_sinks()


def close() -> None:
    """Flush and detach the log file (tests call `main` many times in one process)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        handler.close()
        root.removeHandler(handler)
    logging.getLogger("py.warnings").propagate = True
    logging.getLogger("py.warnings").handlers = []
    if _DATATROVE_ORIGINALS:
        import datatrove.executor.base as executor_base
        import datatrove.utils.logging as dt_logging

        dt_logging.setup_default_logger = _DATATROVE_ORIGINALS["setup_default_logger"]
        for module in (executor_base, sys.modules.get("datatrove.executor.jobs")):
            if module is not None and hasattr(module, "add_task_logger"):
                module.add_task_logger = _DATATROVE_ORIGINALS["add_task_logger"]
        dt_logging.setup_default_logger()
