"""Readers of `corpus build`: raw input with counted rejects, and the per-task intermediate shards.

datatrove's `JsonlReader` logs and skips malformed lines and records without text, so those records would
vanish from the statistics. `RecordReader` reads through `polyglot_llama.io.iter_records` (JSONL plain/.gz/
.zst, Parquet, plain text) and turns every unreadable record into a rejected document with file, line
and reason.
"""

from __future__ import annotations

import os

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.readers.jsonl import JsonlReader
from tqdm import tqdm

from ..io import RejectCounter, iter_records
from .accounting import AccountedStep


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
        text = record.pop(self.text_field)
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
                for record in iter_records([path], rejects, self.text_field):
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
                for bad, reason in self._rejects_to_docs(rejects):
                    self.count_in(bad)
                    self.reject(writer, bad, reason, rank)


class ShardReader(JsonlReader):
    """Reads exactly this task's own intermediate file ``<rank>.jsonl.gz``.

    Dedup stages must see each task's documents in the order the previous stage wrote them (signature
    indices are positions in that file); a plain folder reader would shift shards when a task wrote none.
    """

    name = "read shard"

    def __init__(self, folder: str):
        super().__init__(folder, compression="gzip", add_file_path=False)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        path = f"{rank:05d}.jsonl.gz"
        if self.data_folder.exists(path):
            yield from self.read_file(path)
