"""Run fingerprints: an output folder is reused or resumed only by the run that made it.

``DIR/<stage>.fingerprint.json`` holds the resolved config that affects results and a content digest of
every input the config names (files, globs, model/tokenizer directories). A stage that finds a fingerprint
of a different run in its output folder stops with one line naming what differs and the way out, instead
of "resuming" another run's checkpoint or returning another run's results. Content digests, not mtimes:
an input rewritten with the same bytes (the demo regenerates its inputs) is the same input.
"""

from __future__ import annotations

import dataclasses
import glob as globlib
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from .errors import UserError
from .io import write_json

# Keys that change how a run is shown or scheduled, not what it computes.
_NOT_RESULT_KEYS = frozenset({"output", "log_every", "workers", "num_proc", "resume", "refresh", "force"})
# In a model or tokenizer directory only these files define the input; run logs and reports beside them do not.
_MODEL_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json", "chat_template.jinja", "tokenizer.model")
_OWN_SUFFIXES = (".fingerprint.json", ".config.yaml", ".log")
# Files up to 4 MiB are hashed whole; bigger ones by 16 blocks of 64 KiB spread over the file, plus the size:
# at most 1 MiB read per input file, so fingerprinting a corpus of thousands of shards stays cheap next to
# reading it. Any retraining changes every block of a weights file; an in-place edit of a big corpus shard
# that keeps its size and misses every block is the blind spot (mtimes are no better: rewriting the same
# bytes, as the demo does, would look like a change).
_FULL_HASH_BYTES = 4 << 20
_SAMPLES, _SAMPLE_BYTES = 16, 64 << 10
# How long a run lasts: a rerun with more steps extends the run in its folder (PPO, RLHF rounds), so these
# may differ between runs sharing a folder; everything else may not.
_LENGTH_KEYS = frozenset({"steps", "max_steps", "epochs", "rounds"})
# Stages that key their own caches on content (eval reuses per (checkpoint, task) results and may be
# pointed at more checkpoints later) or rewrite every output from scratch (annotate export re-exports the
# growing database): their fingerprint is recorded, but a different one is not an error.
SELF_KEYED_STAGES = frozenset({"eval", "annotate export"})
_digest_cache: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of the content (of evenly spread blocks for files over 4 MiB), prefixed by the size."""
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if key in _digest_cache:
        return _digest_cache[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if st.st_size <= _FULL_HASH_BYTES:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        else:
            step = (st.st_size - _SAMPLE_BYTES) // (_SAMPLES - 1)
            for i in range(_SAMPLES):
                f.seek(i * step)
                h.update(f.read(_SAMPLE_BYTES))
    _digest_cache[key] = digest = f"{st.st_size}:{h.hexdigest()[:24]}"
    return digest


def _directory_files(directory: Path) -> list[Path]:
    files = sorted(p for p in directory.iterdir() if p.is_file())
    model_files = [p for p in files if p.name in _MODEL_FILES or p.name.endswith(".safetensors")]
    if model_files:
        return model_files
    return [p for p in files if not p.name.endswith(_OWN_SUFFIXES) and not p.name.startswith(".")]


def _input_paths(value: Any, output: Path | None) -> list[str]:
    """Existing files and directories a config value names (globs expanded), outside the output folder."""
    if isinstance(value, dict):
        return [p for v in value.values() for p in _input_paths(v, output)]
    if isinstance(value, (list, tuple)):
        return [p for v in value for p in _input_paths(v, output)]
    if not isinstance(value, str) or not value or "\n" in value or len(value) > 4096:
        return []
    candidates = sorted(globlib.glob(value, recursive=True)) if globlib.has_magic(value) else [value]
    found = []
    for candidate in candidates:
        try:
            path = Path(candidate).resolve()
            if not path.exists():
                continue
        except OSError:
            continue
        if output is not None and (path == output or output in path.parents):
            continue
        found.append(str(path))
    return found


def _digest_inputs(paths: list[str]) -> dict[str, str]:
    digests: dict[str, str] = {}
    for path in dict.fromkeys(paths):
        p = Path(path)
        try:
            if p.is_dir():
                h = hashlib.sha256()
                for f in _directory_files(p):
                    h.update(f"{f.name}={file_digest(f)};".encode())
                digests[path] = f"dir:{h.hexdigest()[:24]}"
            else:
                digests[path] = file_digest(p)
        except OSError:
            continue  # an unreadable input is reported by the stage that reads it, with its own message
    return digests


def _result_config(config: Any) -> Any:
    if isinstance(config, dict):
        return {k: _result_config(v) for k, v in config.items() if k not in _NOT_RESULT_KEYS}
    if isinstance(config, list):
        return [_result_config(v) for v in config]
    return config


def compute(config: dict, stage: str, output: str | os.PathLike | None = None) -> dict:
    """The fingerprint of a run: ``{"stage", "config", "inputs"}`` (JSON-ready)."""
    out = Path(output).resolve() if output else None
    fp = {"stage": stage, "config": _result_config(config), "inputs": _digest_inputs(_input_paths(config, out))}
    return json.loads(json.dumps(fp, ensure_ascii=False, default=str))  # as stored: tuples, int keys, paths


def _without_length(config: Any) -> Any:
    if isinstance(config, dict):
        return {k: _without_length(v) for k, v in config.items()
                if not (k in _LENGTH_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool))}
    if isinstance(config, list):
        return [_without_length(v) for v in config]
    return config


def fingerprint_path(directory: str | os.PathLike, stage: str) -> Path:
    return Path(directory) / f"{stage.replace(' ', '_')}.fingerprint.json"


def differences(old: dict, new: dict, limit: int = 3) -> list[str]:
    """Human-readable differences between two fingerprints, config keys first, then inputs."""
    diffs: list[str] = []
    _diff_config(old.get("config"), new.get("config"), "", diffs)
    old_inputs, new_inputs = old.get("inputs", {}), new.get("inputs", {})
    for path in sorted(set(old_inputs) | set(new_inputs)):
        if path not in new_inputs:
            diffs.append(f"input {path} no longer used")
        elif path not in old_inputs:
            diffs.append(f"new input {path}")
        elif old_inputs[path] != new_inputs[path]:
            diffs.append(f"input {path} changed")
    if len(diffs) > limit:
        diffs = diffs[:limit] + [f"{len(diffs) - limit} more"]
    return diffs


def _diff_config(old: Any, new: Any, key: str, diffs: list[str]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for k in list(old) + [k for k in new if k not in old]:
            _diff_config(old.get(k), new.get(k), f"{key}.{k}" if key else k, diffs)
    elif old != new:
        diffs.append(f"{key or 'config'} {_short(old)} -> {_short(new)}")


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def claim(config: dict, directory: str | os.PathLike, stage: str) -> dict:
    """Record this run's fingerprint in ``directory``, or stop if a different run's is there.

    Raises `UserError` naming the first differences and the way out (``--overwrite`` or another ``--output``).
    """
    new = compute(config, stage, directory)
    path = fingerprint_path(directory, stage)
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        if old is not None and old == new:
            return new
        same_run = old is not None and (_without_length(old.get("config")), old.get("inputs")) == (
            _without_length(new["config"]), new["inputs"])
        if old is not None and not same_run and stage not in SELF_KEYED_STAGES:
            raise UserError(
                f"{directory} holds the output of a different `{stage}` run ({'; '.join(differences(old, new))}); "
                f"rerun with --overwrite to replace it, or choose another --output"
            )
    write_json(path, new)
    return new


def is_run_folder(directory: str | os.PathLike) -> bool:
    """A folder some polyglot-llama stage wrote (it holds a fingerprint or a resolved config)."""
    directory = Path(directory)
    return directory.is_dir() and any(p.name.endswith((".fingerprint.json", ".config.yaml")) for p in directory.iterdir())


def clear_output(directory: str | os.PathLike) -> bool:
    """``--overwrite``: delete a previous run's output folder; refuse folders no stage wrote."""
    directory = Path(directory)
    if not directory.exists():
        return False
    if not directory.is_dir():
        raise UserError(f"{directory} is a file, not an output folder; choose another --output")
    if not any(directory.iterdir()):
        return False
    if not is_run_folder(directory):
        raise UserError(f"{directory} is not empty and was not written by polyglot-llama; "
                        "--overwrite deletes only run folders: empty or remove it yourself, or choose another --output")
    shutil.rmtree(directory)
    return True


def output_of(cfg: Any) -> str | None:
    """The output folder a stage config names, if any."""
    if dataclasses.is_dataclass(cfg):
        value = getattr(cfg, "output", None)
        return str(value) if value else None
    return None
