"""Per-step, per-language bookkeeping shared by every step of `corpus build`, and the rejected-document writer.

Each step counts, per language, the documents and characters it received, kept and rejected (per reason)
into its datatrove `Stats`, which the executor saves per task (``logs/<stage>/stats/<rank>.json``) and keeps
across resumed runs. `report.py` adds them up. Keys: ``docs_in|<lang>``, ``chars_in|<lang>``,
``docs_kept|<lang>``, ``chars_kept|<lang>``, ``docs_rejected|<lang>|<reason>``, ``chars_rejected|<lang>|<reason>``.

Every rejected document is written to ``DIR/rejected/<step>/<rank>.jsonl.gz`` with its step and reason.
"""

from __future__ import annotations

import contextlib
from itertools import islice
from weakref import WeakKeyDictionary

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter, get_filter_result
from datatrove.pipeline.writers.jsonl import JsonlWriter

UNDETERMINED = "und"
# Stats object -> {"<event>|<suffix>": (docs metric, chars metric)}: `AccountedStep._tally`'s lookups
_METRICS: WeakKeyDictionary = WeakKeyDictionary()


def batches(data, size: int):
    """Lists of up to ``size`` consecutive items of ``data``, in order."""
    iterator = iter(data)
    while batch := list(islice(iterator, size)):
        yield batch


def doc_language(doc: Document) -> str:
    return doc.metadata.get("language", UNDETERMINED)


class RejectWriter(JsonlWriter):
    """Writes rejected documents of one step as ``<folder>/<step>/<rank>.jsonl.gz``."""

    def __init__(self, folder: str, step: str):
        super().__init__(folder, output_filename=f"{step}/${{rank}}.jsonl.gz", compression="gzip",
                         adapter=_reject_record)
        self.step = step


def _reject_record(writer: RejectWriter, doc: Document) -> dict:
    metadata = dict(doc.metadata)
    record = {"step": writer.step, "reason": metadata.pop("filter_reason", ""), "id": doc.id}
    for key in ("file", "line", "language", "language_score"):  # where it came from, what LID said
        if key in metadata:
            record[key] = metadata.pop(key)
    record["text"] = doc.text
    record["metadata"] = metadata
    return record


class AccountedStep(PipelineStep):
    """A pipeline step that counts documents and characters in, kept and rejected, per language."""

    step_name: str = "step"

    def __init__(self, rejected_folder: str | None = None):
        super().__init__()
        self.rejected_folder = rejected_folder

    def count_in(self, doc: Document) -> None:
        self._tally("in", doc_language(doc), doc)

    def count_kept(self, doc: Document) -> None:
        self._tally("kept", doc_language(doc), doc)

    def count_rejected(self, doc: Document, reason: str) -> None:
        self._tally("rejected", f"{doc_language(doc)}|{reason}", doc)

    def _tally(self, event: str, suffix: str, doc: Document) -> None:
        """``stat_update(f"docs_{event}|{suffix}")`` and the same for chars with len(doc.text), with less overhead.

        Six such updates per document and step were a tenth of the Korean recipe's CPU time (an f-string,
        datatrove's label loop and lookup, and min/max/Welford per count). The two metrics of a key are looked
        up once per Stats object (kept beside it, not on the step: datatrove saves a step's attributes as JSON);
        a count's update adds 1 to ``total`` and ``n`` only, which is what datatrove's update does when every
        value is 1 (mean, min and max stay 1, the variance 0).
        """
        by_key = _METRICS.get(self.stats)
        if by_key is None:  # a new Stats object (the executor runs a copy of each step, with its own)
            by_key = _METRICS[self.stats] = {}
        key = event + "|" + suffix
        metrics = by_key.get(key)
        if metrics is None:
            metrics = by_key[key] = (self.stats["docs_" + key], self.stats["chars_" + key])
        docs, chars = metrics
        if docs.n:
            docs.total += 1
            docs.n += 1
        else:
            docs.update(1)
        chars.update(len(doc.text))

    def reject_writer(self):
        """Context manager yielding a writer for this step's rejects (or None when rejects are not kept)."""
        if self.rejected_folder is None:
            return contextlib.nullcontext()
        return RejectWriter(self.rejected_folder, self.step_name)

    def reject(self, writer, doc: Document, reason: str, rank: int) -> None:
        self.count_rejected(doc, reason)
        if writer is not None:
            doc.metadata["filter_reason"] = reason
            writer.write(doc, rank)


class CorpusFilter(AccountedStep, BaseFilter):
    """A datatrove filter (``filter(doc) -> True | (False, reason)``) with per-language accounting."""

    def __init__(self, rejected_folder: str | None = None):
        AccountedStep.__init__(self, rejected_folder)
        self.exclusion_writer = None
        self.batch_size = 1

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        with self.reject_writer() as writer:
            for doc in data:
                self.count_in(doc)
                with self.track_time():
                    keep, reason = get_filter_result(self.filter(doc))
                if keep:
                    self.count_kept(doc)
                    yield doc
                else:
                    self.reject(writer, doc, reason or "filtered", rank)


class _CountingSink:
    """Stands in for a datatrove exclusion writer: counts each document it receives as rejected."""

    def __init__(self, step: AccountedStep, reason: str, rank: int):
        self.step, self.reason, self.rank = step, reason, rank
        self._writer_cm = step.reject_writer()
        self._writer = None

    def __enter__(self):
        self._writer = self._writer_cm.__enter__()
        return self

    def __exit__(self, *exc):
        return self._writer_cm.__exit__(*exc)

    def write(self, doc: Document, rank: int = 0, **_):
        self.step.reject(self._writer, doc, self.reason, rank)


class AccountedDatatroveFilter(AccountedStep):
    """Runs one of datatrove's own dropping steps (exact/MinHash dedup filters) with our accounting.

    Those steps drop documents through an ``exclusion_writer`` and yield the rest; we count what goes in,
    what comes out, and every document handed to the exclusion writer, as rejected with ``reason``.
    """

    def __init__(self, inner: PipelineStep, step_name: str, reason: str, rejected_folder: str | None):
        self.name = self.step_name = step_name  # before super().__init__(), which names the step's Stats
        self.type = inner.type
        super().__init__(rejected_folder)
        self.inner, self.reason = inner, reason

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        def counted(stream):
            for doc in stream:
                self.count_in(doc)
                yield doc

        self.inner.exclusion_writer = _CountingSink(self, self.reason, rank)
        for doc in self.inner.run(counted(data), rank, world_size):
            self.count_kept(doc)
            yield doc
