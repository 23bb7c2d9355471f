"""File input/output shared by every stage: atomic writes and record reading with counted rejects.

Writes are atomic (temp file in the same directory, then ``os.replace``) so a killed run never leaves a
half-written file that a resumed run would trust.
"""

from __future__ import annotations

import contextlib
import glob as globlib
import gzip
import hashlib
import io
import json
import os
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .errors import UserError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; on success rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def write_jsonl(path: str | os.PathLike, records) -> int:
    """Write records as JSON lines (gzip when the name ends in .gz); returns the count."""
    n = 0
    with atomic_path(path) as tmp:
        opener = gzip.open if str(path).endswith(".gz") else open
        with opener(tmp, "wt", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
                n += 1
    return n


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}); fix or regenerate the file") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start}); the file is damaged, regenerate it") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read the file ({e.strerror or e})") from None


def cache_key(files: list[str], *parts: str) -> str:
    """A short key for results derived from ``files`` (path, size, mtime of each) and ``parts``
    (e.g. the serialised tokenizer and the options): a cache entry is reused only while all are unchanged."""
    h = hashlib.sha256()
    for path in files:
        st = os.stat(path)
        h.update(f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}".encode())
    for part in parts:
        h.update(b"\0" + part.encode())
    return h.hexdigest()[:16]


def expand_inputs(patterns: str | list[str]) -> list[str]:
    """Expand one or more globs (or plain paths) into a sorted file list; an empty match is an error."""
    if isinstance(patterns, str):
        patterns = [patterns]
    files: list[str] = []
    for pattern in patterns:
        matched = sorted(globlib.glob(os.path.expanduser(pattern), recursive=True))
        if not matched:
            raise UserError(f"input {pattern!r} matches no file; check the path or glob")
        files.extend(p for p in matched if os.path.isfile(p))
    if not files:
        raise UserError(f"input {patterns!r} matches only directories; give files or a glob such as DIR/*.jsonl")
    return files


def _open_text(path: str):
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.endswith(".zst"):
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"))
    return open(path, "rb")


@dataclass
class RejectCounter:
    """Counts and keeps records that could not be read, with file, line and reason."""

    rejected: list[dict] = field(default_factory=list)
    lost_files: list[dict] = field(default_factory=list)
    """Files (shards) that could not be read to the end: ``{"file", "after_line", "reason", "bytes"}``."""

    def add(self, file: str, line: int, reason: str, raw: str = "") -> None:
        self.rejected.append({"file": file, "line": line, "reason": reason, "raw": raw[:2000]})

    def lose_file(self, file: str, after_line: int, reason: str) -> None:
        """Quarantine the rest of ``file``: it counts as one reject (so stage reports show it) and as a lost shard."""
        try:
            size = os.path.getsize(file)
        except OSError:
            size = 0
        self.lost_files.append({"file": file, "after_line": after_line, "reason": reason, "bytes": size})
        self.add(file, after_line, f"{reason}; skipped the rest of this {size:,}-byte file (shard quarantined)")

    @property
    def lost_bytes(self) -> int:
        return sum(f["bytes"] for f in self.lost_files)

    @property
    def count(self) -> int:
        return len(self.rejected)

    def by_reason(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rejected:
            out[r["reason"]] = out.get(r["reason"], 0) + 1
        return out


def _damage_errors() -> tuple[type[BaseException], ...]:
    """Exceptions meaning "this file cannot be read (any further)": corrupt or truncated gzip/zstd/Parquet,
    permission denied, I/O errors. ``gzip.BadGzipFile`` is an ``OSError``; a truncated gzip raises EOFError."""
    errors: list[type[BaseException]] = [OSError, EOFError, zlib.error]
    try:
        import zstandard

        errors.append(zstandard.ZstdError)
    except ImportError:
        pass
    try:
        import pyarrow

        errors.append(pyarrow.ArrowException)
    except ImportError:
        pass
    return tuple(errors)


def iter_records(files: list[str], rejects: RejectCounter, text_field: str | None = "text") -> Iterator[dict]:
    """Yield dict records from JSONL (.jsonl/.json, optionally .gz/.zst), Parquet or plain-text files.

    Plain text yields one record per non-empty paragraph (blank-line separated) as ``{"text": ...}``.
    Malformed lines, invalid UTF-8 and records without a string ``text_field`` are counted in ``rejects``
    and skipped; ``text_field=None`` skips that check (for records of other shapes, e.g. conversations).
    A file that cannot be read (corrupt or truncated compression, permission denied) is quarantined: the
    records before the damage are kept, the rest of the file is counted in ``rejects.lost_files`` with its
    reason and size, and the run goes on with the other files.
    """
    damage = _damage_errors()
    for path in files:
        position = [0]  # records read from this file so far, for the reason text
        try:
            yield from _file_records(path, rejects, text_field, position)
        except damage as e:
            rejects.lose_file(path, position[0], _describe_damage(path, e))


def _describe_damage(path: str, error: BaseException) -> str:
    if isinstance(error, PermissionError):
        return "unreadable file (permission denied)"
    if isinstance(error, IsADirectoryError):
        return "is a directory, not a file"
    if isinstance(error, EOFError):
        return "truncated compressed file (ends before the end-of-stream marker)"
    kind = "corrupt compressed file" if path.endswith((".gz", ".zst")) else "unreadable file"
    detail = str(error).strip() or type(error).__name__
    return f"{kind} ({detail})"


def _file_records(path: str, rejects: RejectCounter, text_field: str | None, position: list[int]) -> Iterator[dict]:
    name = path[:-3] if path.endswith(".gz") else path[:-4] if path.endswith(".zst") else path
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        for row_no, row in enumerate(pq.read_table(path).to_pylist(), start=1):
            position[0] = row_no
            if text_field and not isinstance(row.get(text_field), str):
                rejects.add(path, row_no, f"missing or non-string field '{text_field}'", json.dumps(row, default=str))
                continue
            yield row
    elif name.endswith((".jsonl", ".json", ".ndjson")):
        with _open_text(path) as raw:
            for line_no, line_bytes in enumerate(io.BufferedReader(raw), start=1):
                position[0] = line_no
                try:
                    line = line_bytes.decode("utf-8")
                except UnicodeDecodeError:
                    rejects.add(path, line_no, "invalid UTF-8", line_bytes.decode("utf-8", "replace"))
                    continue
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    rejects.add(path, line_no, f"malformed JSON: {e.msg}", line)
                    continue
                if not isinstance(record, dict):
                    rejects.add(path, line_no, "record is not a JSON object", line)
                    continue
                if text_field and not isinstance(record.get(text_field), str):
                    rejects.add(path, line_no, f"missing or non-string field '{text_field}'", line)
                    continue
                yield record
    else:
        with _open_text(path) as raw:
            data = raw.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            rejects.add(path, 0, f"invalid UTF-8 at byte {e.start}")
            return
        for para in text.split("\n\n"):
            if para.strip():
                yield {"text": para.strip()}
