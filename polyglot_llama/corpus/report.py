"""stats.json and stats.md of `corpus build`: documents and characters in/out per step and per language.

The numbers come from the per-task stats files datatrove's executors write (``work/logs/<stage>/stats/
<rank>.json``), which survive a resumed run, so the report always covers every task, not only those the
last invocation ran. It is written by `ReportStep`, the last (single-task) stage, so it appears on Slurm
and Ray exactly as locally.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from ..io import write_json, write_text
from ..languages import language_name

COUNTS = ("docs_in", "chars_in", "docs_kept", "chars_kept", "docs_rejected", "chars_rejected")


def _total(value) -> float:
    return value["total"] if isinstance(value, dict) else value


def collect_step_stats(logs_dir: Path, stages: list[str], steps: list[str]) -> list[dict]:
    """Sum the accounting keys of every task of every stage into one record per step (in pipeline order)."""
    per_step = {name: {"step": name, **{c: 0 for c in COUNTS}, "rejected_by_reason": defaultdict(int),
                       "by_language": defaultdict(lambda: {c: 0 for c in COUNTS}), "extra": defaultdict(int)}
                for name in steps}
    for stage in stages:
        for stats_file in sorted((logs_dir / stage / "stats").glob("*.json")):
            for block in json.loads(stats_file.read_text(encoding="utf-8")):
                name = block["name"].split(": ", 1)[-1]
                if name not in per_step:
                    continue
                record = per_step[name]
                record["stage"] = stage
                for key, value in block["stats"].items():
                    kind, *rest = key.split("|")
                    if kind in COUNTS:
                        language = rest[0]
                        amount = int(_total(value))
                        record[kind] += amount
                        record["by_language"][language][kind] += amount
                        if kind == "docs_rejected":
                            record["rejected_by_reason"][rest[1]] += amount
                    elif rest:
                        record["extra"][key] += int(_total(value))
    out = []
    for name in steps:
        record = per_step[name]
        record["rejected_by_reason"] = dict(sorted(record["rejected_by_reason"].items(), key=lambda kv: -kv[1]))
        record["by_language"] = {lang: dict(v) for lang, v in sorted(record["by_language"].items())}
        record["extra"] = dict(record["extra"])
        record["balanced"] = record["docs_in"] == record["docs_kept"] + record["docs_rejected"]
        out.append(record)
    return out


def build_report(logs_dir: Path, stages: list[str], steps: list[str], meta: dict) -> dict:
    step_stats = collect_step_stats(logs_dir, stages, steps)
    first, last = step_stats[0], step_stats[-1]
    kept = {lang: {"docs": v["docs_kept"], "chars": v["chars_kept"]}
            for lang, v in last["by_language"].items() if v["docs_kept"]}
    return {
        **meta,
        "documents_in": first["docs_in"],
        "documents_kept": last["docs_kept"],
        "documents_rejected": sum(s["docs_rejected"] for s in step_stats),
        "characters_in": first["chars_in"],
        "characters_kept": last["chars_kept"],
        "kept_by_language": kept,
        # shards that broke off part-way (corrupt gzip/zstd/Parquet); listed in rejected/quarantined_files/
        "quarantined_files": first["extra"].get("quarantined|files", 0),
        "quarantined_bytes": first["extra"].get("quarantined|bytes", 0),
        "steps": step_stats,
    }


def _fmt(n: float) -> str:
    return f"{int(n):,}"


def render_markdown(report: dict) -> str:
    lines = [
        f"# Corpus build: {report['output']}",
        "",
        f"Languages kept: {', '.join(report['languages'])}. Input: {report['input_files']} file(s), "
        f"{_fmt(report['documents_in'])} documents, {_fmt(report['characters_in'])} characters. "
        f"Kept: {_fmt(report['documents_kept'])} documents "
        f"({report['documents_kept'] / max(report['documents_in'], 1):.1%}), "
        f"{_fmt(report['characters_kept'])} characters."
        + (f" Quarantined (damaged, read up to the damage): {report['quarantined_files']} file(s), "
           f"{_fmt(report['quarantined_bytes'])} bytes; see rejected/quarantined_files/." if report["quarantined_files"] else ""),
        "",
        "## Per step",
        "",
        "| step | docs in | kept | rejected | chars in | chars kept | rejected because |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for s in report["steps"]:
        reasons = ", ".join(f"{r} {n}" for r, n in s["rejected_by_reason"].items()) or "-"
        lines.append(f"| {s['step']} | {_fmt(s['docs_in'])} | {_fmt(s['docs_kept'])} | {_fmt(s['docs_rejected'])} "
                     f"| {_fmt(s['chars_in'])} | {_fmt(s['chars_kept'])} | {reasons} |")
    lines += ["", "## Kept, per language", "", "| language | docs | chars | share of chars |", "|---|---:|---:|---:|"]
    total_chars = max(report["characters_kept"], 1)
    for lang, v in sorted(report["kept_by_language"].items(), key=lambda kv: -kv[1]["chars"]):
        lines.append(f"| {lang} ({language_name(lang)}) | {_fmt(v['docs'])} | {_fmt(v['chars'])} "
                     f"| {v['chars'] / total_chars:.1%} |")
    lines += ["", "## Per step and language", "", "| step | language | docs in | kept | rejected | chars in | chars kept |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for s in report["steps"]:
        for lang, v in s["by_language"].items():
            lines.append(f"| {s['step']} | {lang} | {_fmt(v['docs_in'])} | {_fmt(v['docs_kept'])} "
                         f"| {_fmt(v['docs_rejected'])} | {_fmt(v['chars_in'])} | {_fmt(v['chars_kept'])} |")
    lines += ["", "Rejected documents, with step and reason: `rejected/<step>/*.jsonl.gz`.", ""]
    return "\n".join(lines)


class ReportStep(PipelineStep):
    """Single-task last stage: writes ``stats.json`` and ``stats.md`` from every stage's task stats."""

    type = "📊 - STATS"
    name = "report"

    def __init__(self, output: str, logs_dir: str, stages: list[str], steps: list[str], meta: dict):
        super().__init__()
        self.output, self.logs_dir, self.stages, self.steps, self.meta = output, logs_dir, stages, steps, meta

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> None:
        # Not a generator: the executor calls run() and, as nothing is returned, has nothing to drain.
        report = build_report(Path(self.logs_dir), self.stages, self.steps, self.meta)
        write_json(Path(self.output) / "stats.json", report)
        write_text(Path(self.output) / "stats.md", render_markdown(report))
