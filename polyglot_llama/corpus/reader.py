"""Readers of `corpus build`: raw input with counted rejects, and the per-task intermediate shards.

datatrove's `JsonlReader` logs and skips malformed lines and records without text, so those records would
vanish from the statistics. `RecordReader` reads through `polyglot_llama.io.iter_records` (JSONL plain/.gz/
.zst, Parquet, plain text) or `warc.iter_warc` (WARC/WET, .gz) and turns every unreadable record into a
rejected document with file, line and reason. A shard that cannot be read to its end (corrupt or
truncated gzip/zstd, not a Parquet file) is quarantined: its reason, size and the records read before the
damage go to ``rejected/quarantined_files/<rank>.jsonl``, the stats count files and bytes lost, and the
run goes on with the next file.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from pathlib import Path

import pyarrow
import zstandard
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.readers.jsonl import JsonlReader
from datatrove.pipeline.writers.jsonl import JsonlWriter
from tqdm import tqdm
from warcio.exceptions import ArchiveLoadFailed

from ..errors import UserError
from ..io import RejectCounter, expand_inputs, iter_records
from .accounting import AccountedStep
from .warc import is_warc, iter_warc

# Line ends as text extractors (trafilatura, FineWeb's) leave them: "\n" only, no trailing blanks. Text
# from Windows tools or PDF converters otherwise fails FineWeb's "line ends in punctuation" rule.
_TRAILING_BLANKS = re.compile(r"[ \t\f\v]+$", re.MULTILINE)
# What a damaged file raises part-way: gzip's BadGzipFile is an OSError, a truncated stream EOFError.
_DAMAGED = (OSError, EOFError, zlib.error, zstandard.ZstdError, pyarrow.ArrowException, ArchiveLoadFailed)


def normalise_line_ends(text: str) -> str:
    """CRLF/CR → LF and no spaces or tabs before a line end."""
    return _TRAILING_BLANKS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def expand_corpus_inputs(patterns: list[str]) -> list[str]:
    """Files, globs and folders (every file below a folder, e.g. a folder of plain-text files) → sorted files."""
    files: list[str] = []
    for pattern in patterns:
        folder = Path(os.path.expanduser(pattern))
        if folder.is_dir():
            found = sorted(str(p) for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
            if not found:
                raise UserError(f"input {pattern!r} is an empty folder; give files, a glob or a folder with files")
            files += found
        else:
            files += expand_inputs(pattern)
    return files


class RecordReader(AccountedStep):
    """Reads this task's share of ``files`` (every ``world_size``-th file) into Documents."""

    type = "📖 - READER"
    name = "read"
    step_name = "read"

    def __init__(self, files: list[str], text_field: str = "text", id_field: str = "id",
                 rejected_folder: str | None = None):
        super().__init__(rejected_folder)
        self.files, self.text_field, self.id_field = files, text_field, id_field

    def _rejects_to_docs(self, rejects: RejectCounter):
        for item in rejects.rejected:
            yield Document(text=item["raw"], id=f"{item['file']}:{item['line']}",
                           metadata={"file": item["file"], "line": item["line"]}), item["reason"]
        rejects.rejected.clear()

    def _document(self, record: dict, path: str, ordinal: int) -> Document:
        text = normalise_line_ends(record.pop(self.text_field))
        raw_id = record.pop(self.id_field, None)
        doc_id = str(raw_id) if isinstance(raw_id, (str, int)) else f"{os.path.basename(path)}/{ordinal}"
        record.pop("lang", None)  # the input's own label is replaced by language ID downstream
        return Document(text=text, id=doc_id, metadata={"source_file": path, **record})

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        files = self.files[rank::world_size]
        # one bar, for the first task only: parallel tasks would overwrite each other's lines
        progress = tqdm(desc=f"task {rank}/{world_size}: documents read", unit="doc", disable=rank != 0, mininterval=1)
        with self.reject_writer() as writer, progress:
            for file_no, path in enumerate(files, start=1):
                self.stat_update("input_files")
                progress.set_postfix_str(f"file {file_no}/{len(files)}")
                rejects = RejectCounter()
                ordinal = 0
                records = iter_warc(path, rejects, self.text_field) if is_warc(path) else iter_records([path], rejects, self.text_field)
                try:
                    for record in records:
                        progress.update()
                        for bad, reason in self._rejects_to_docs(rejects):
                            self.count_in(bad)
                            self.reject(writer, bad, reason, rank)
                        ordinal += 1
                        doc = self._document(record, path, ordinal)
                        self.count_in(doc)
                        if not doc.text.strip():
                            doc.metadata.update(file=path, record=ordinal)
                            self.reject(writer, doc, "empty text", rank)
                            continue
                        self.count_kept(doc)
                        yield doc
                except _DAMAGED as e:  # the WARC reader; iter_records reports damage in rejects.lost_files
                    self._quarantine(path, f"{type(e).__name__}: {e}", ordinal, rank)
                self._quarantine_lost(rejects, rank)
                for bad, reason in self._rejects_to_docs(rejects):
                    self.count_in(bad)
                    self.reject(writer, bad, reason, rank)

    def _quarantine_lost(self, rejects: RejectCounter, rank: int) -> None:
        """Files `iter_records` stopped reading part-way go to the quarantine list, not the per-record rejects."""
        for lost in rejects.lost_files:
            self._quarantine(lost["file"], lost["reason"], lost["after_line"], rank)
            rejects.rejected = [r for r in rejects.rejected if (r["file"], r["line"]) != (lost["file"], lost["after_line"])
                                or "(shard quarantined)" not in r["reason"]]
        rejects.lost_files.clear()

    def _quarantine(self, path: str, reason: str, records_read: int, rank: int) -> None:
        """Record a file that broke off part-way; the records before the damage were already passed on."""
        size = os.path.getsize(path)
        self.stat_update("quarantined|files")
        self.stat_update("quarantined|bytes", value=size)
        if self.rejected_folder is None:
            return
        folder = Path(self.rejected_folder) / "quarantined_files"
        folder.mkdir(parents=True, exist_ok=True)
        entry = {"file": path, "bytes": size, "reason": reason, "records_read_before_damage": records_read}
        with open(folder / f"{rank:05d}.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")


def _shard_record(writer, doc: Document) -> dict:
    """datatrove's default record (its non-empty fields) without `dataclasses.asdict`'s deep copy of each document."""
    if doc.media:
        return writer._default_adapter(doc)
    return {key: value for key, value in (("text", doc.text), ("id", doc.id), ("metadata", doc.metadata)) if value}


class ShardWriter(JsonlWriter):
    """Writes a task's intermediate file ``<rank>.jsonl.zst``, which only this run reads back (`ShardReader`).

    zstd (level 3) rather than datatrove's gzip, which compresses at level 9: the shard is written once and read
    twice, and gzip's level 9 cost about as much CPU as the PII step.
    """

    name = "write shard"

    def __init__(self, folder: str):
        super().__init__(folder, output_filename="${rank}.jsonl.zst", compression="zstd", adapter=_shard_record)


class ShardReader(JsonlReader):
    """Reads exactly this task's own intermediate file ``<rank>.jsonl.zst``.

    Dedup stages must see each task's documents in the order the previous stage wrote them (signature
    indices are positions in that file); a plain folder reader would shift shards when a task wrote none.
    """

    name = "read shard"

    def __init__(self, folder: str):
        super().__init__(folder, compression="zstd", add_file_path=False)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        path = f"{rank:05d}.jsonl.zst"
        if self.data_folder.exists(path):
            yield from self.read_file(path)
        elif self.data_folder.exists(f"{rank:05d}.jsonl.gz"):  # resuming a run of a version that wrote gzip
            raise UserError(f"{self.data_folder.path}/{rank:05d}.jsonl.gz was written by an older polyglot-llama "
                            "(shards are .jsonl.zst now); rebuild with --resume false")
