"""The checkpoints of one eval run: display names, fingerprints for the cache, lazy loading with captured errors.

A checkpoint that cannot be loaded does not stop the suite: the error is kept and every task on that
checkpoint reports it, while the other checkpoints are evaluated as usual.
"""

from __future__ import annotations

import gc
import hashlib
import json
from pathlib import Path

import torch

from ..errors import UserError
from .lm import LanguageModel, Runtime

# Weight files are hashed by size, mtime and their first and last MiB: a content hash of a 70B checkpoint
# (140 GB) would take minutes, and a rewritten checkpoint changes at least its mtime and header.
_SAMPLE_BYTES = 1 << 20
_SMALL_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "reward_config.json", "generation_config.json")


def fingerprint_checkpoint(path: str | Path) -> str:
    path = Path(path)
    digest = hashlib.sha256()
    for name in _SMALL_FILES:
        if (path / name).is_file():
            digest.update(name.encode() + b"\0" + (path / name).read_bytes())
    for weights in sorted(path.glob("*.safetensors")):
        stat = weights.stat()
        digest.update(f"{weights.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        with open(weights, "rb") as f:
            digest.update(f.read(_SAMPLE_BYTES))
            f.seek(max(0, stat.st_size - _SAMPLE_BYTES))
            digest.update(f.read(_SAMPLE_BYTES))
    return digest.hexdigest()[:16]


def display_names(paths: list[str]) -> list[str]:
    """Short unique names: the directory name, with parents added until names differ (run1/model, run2/model)."""
    parts = [Path(p).resolve().parts for p in paths]
    depth = 1
    while True:
        names = ["/".join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names) or depth >= max(map(len, parts)):
            return names
        depth += 1


def is_reward_model(path: str | Path) -> bool:
    config = json.loads((Path(path) / "config.json").read_text())
    return any(arch.endswith("ForSequenceClassification") for arch in config.get("architectures") or [])


class Checkpoint:
    """One --model argument: loads the causal LM or reward model on first use, at most once."""

    def __init__(self, path: str, name: str, runtime: Runtime):
        self.path, self.name, self.runtime = path, name, runtime
        self.fingerprint: str | None = None
        self.error: str | None = None
        self._lm: LanguageModel | None = None
        self._rm = None
        try:
            if not (Path(path) / "config.json").is_file():
                raise UserError(f"{path}: no config.json; give a Hugging Face model directory")
            self.fingerprint = fingerprint_checkpoint(path)
        except (UserError, OSError) as e:
            self.error = str(e)

    def _check(self) -> None:
        if self.error:
            raise UserError(f"model could not be loaded: {self.error}")

    def language_model(self) -> LanguageModel:
        self._check()
        if self._lm is None:
            from ..model.checkpoint import load_causal_lm, load_tokenizer

            if is_reward_model(self.path):
                raise UserError(f"{self.path} is a reward model (sequence classification); this task needs a causal LM")
            try:
                tokenizer = load_tokenizer(self.path)
                device_map = self.runtime.device_map()
                model = load_causal_lm(self.path, dtype=self.runtime.torch_dtype(), device_map=device_map)
                if device_map is None:
                    model = model.to(self.runtime.torch_device())
            except Exception as e:  # corrupt weights, missing files, wrong shapes: reported, not fatal
                message = str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}"
                self.error = (message.splitlines() or [type(e).__name__])[0]
                self._check()
            rows = model.get_input_embeddings().weight.shape[0]
            if len(tokenizer) > rows:  # ids past the last row would index out of range mid-task
                self.error = (f"{self.path}: the tokenizer has {len(tokenizer)} tokens but the model's embeddings have "
                              f"{rows} rows; resize the model to the tokenizer (polyglot-llama model extend)")
                self._check()
            self._lm = LanguageModel(model, tokenizer, self.runtime)
        return self._lm

    def reward_model(self):
        """(model, tokenizer) of a reward-model checkpoint (contracts §4)."""
        self._check()
        if self._rm is None:
            if not is_reward_model(self.path):
                raise UserError(f"{self.path} is not a reward model (no *ForSequenceClassification architecture)")
            self._rm = load_reward_model_on(self.path, self.runtime)
        return self._rm

    def release(self) -> None:
        """Free the weights before the next checkpoint is loaded (two 7B models rarely fit side by side)."""
        self._lm = self._rm = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def load_reward_model_on(path: str, runtime: Runtime):
    from ..model.reward_model import load_reward_model

    try:
        return load_reward_model(path, dtype=runtime.torch_dtype(), device=runtime.torch_device())
    except UserError:
        raise
    except Exception as e:  # corrupt weights or shapes: reported for this checkpoint, not fatal
        raise UserError(f"reward model {path} could not be loaded: {type(e).__name__}: {e}".splitlines()[0]) from None
