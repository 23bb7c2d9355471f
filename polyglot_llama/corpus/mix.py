"""`polyglot-llama corpus mix`: plan a multi-language mixture by token budgets and write it as shards.

Two passes over the sources. Pass 1 tokenises every document with the *target* tokenizer (the extended one
the model will train with) and keeps only its token count and duplicate-cluster size (cached under
``OUTPUT/token_counts/``, so changing weights and rerunning does not re-tokenise). The plan then follows
`sampling`: language budgets → source budgets → integer copies per document. Pass 2 streams the sources
again, appends each drawn copy to a random bucket file, then writes every bucket in a random order as
shards of about ``tokens_per_shard`` tokens, reading lines by offset: memory stays flat however large the
corpus is.

Outputs under ``OUTPUT/``: ``mixture/mixture-NNNNN.jsonl.gz`` ({"text", "lang", "source"[, "id"]}: what
`polyglot-llama pretrain` reads), ``validation/<lang>.jsonl.gz`` (documents held out of the draw),
``manifest.json`` (shards with documents per language), ``report.md`` / ``report.json`` (per language and
source: tokens available, planned, drawn, epochs, share), ``rejected.jsonl`` (unreadable records with
file, line and reason) and the resolved config.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from ..config import write_resolved_config
from ..errors import UserError
from ..io import RejectCounter, cache_key, expand_inputs, iter_records, write_json, write_jsonl, write_text
from ..languages import normalize_language
from ..progress import phase
from . import sampling

log = logging.getLogger(__name__)
# Data repeated more often than this starts to cost quality (Muennighoff et al. 2023: up to ~4 epochs are
# almost as good as fresh data); the run warns so the user can switch to unimax or lower total_tokens.
REPEAT_WARNING_EPOCHS = 4.0


@dataclass
class SourceConfig:
    name: str = ""
    """Short unique name used in the report and in each output record's ``source`` (default: lang_index)."""
    lang: str = ""
    """Language of every document in this source (ISO 639 code such as ko, kor or kor_Hang)."""
    paths: list[str] = field(default_factory=list)
    """Globs of JSONL(.gz/.zst) or Parquet files with a text field."""
    upsample: float = 1.0
    """Weight of this source relative to the other sources of its language (Llama 2 up-sampled factual sources)."""
    rehydrate: bool = False
    """Repeat documents by their duplicate-cluster size with the `rehydration` table (FineWeb-2)."""

    def __post_init__(self):
        if not self.lang:
            raise UserError(f"source '{self.name or '?'}': key 'lang' is required, e.g. lang: ko")
        self.lang = normalize_language(self.lang)
        if not self.paths:
            raise UserError(f"source '{self.name or self.lang}': key 'paths' is required (globs of JSONL/Parquet files)")
        if not self.upsample > 0:
            raise UserError(f"source '{self.name or self.lang}': key 'upsample' is {self.upsample}; it must be positive")


@dataclass
class ReplayConfig:
    lang: str = "en"
    """The language replayed to prevent forgetting (normally the base model's main language)."""
    share: float | None = None
    """Fixed share of the total budget for `lang`, in [0, 1) (Swallow: about 0.1); unset = no fixed replay."""

    def __post_init__(self):
        self.lang = normalize_language(self.lang)
        if self.share is not None and not 0 <= self.share < 1:
            raise UserError(f"key 'replay.share' is {self.share}; it must lie in [0, 1), e.g. 0.1 for 90:10 target:English")


@dataclass
class MixConfig:
    tokenizer: str = ""
    """Target tokenizer directory (the one the model trains with): token counts are measured with it."""
    output: str = ""
    """Output directory: mixture/*.jsonl.gz, manifest.json, report.md, report.json."""
    sources: list[SourceConfig] = field(default_factory=list)
    """Sources: [{name, lang, paths, upsample, rehydrate}, ...]."""
    method: Literal["temperature", "unimax", "weights"] = "temperature"
    """How languages share the budget: temperature (p ∝ n^alpha), unimax (uniform, capped) or weights."""
    alpha: float = 0.3
    """Temperature exponent: 1 = natural proportions, 0 = uniform (XLM-R / mT5: 0.3)."""
    weights: dict[str, float] = field(default_factory=dict)
    """Language weights for method=weights, e.g. {ko: 9, en: 1}; normalised to sum to 1."""
    max_epochs: float = 4.0
    """UniMax: at most this many passes over any language's data (Chung et al. 2023 use 1-5)."""
    total_tokens: int = 0
    """Tokens to draw in total; 0 = as many as all sources hold together."""
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    """Replay language and its fixed share of the budget."""
    rehydration: dict[str, float] = field(default_factory=lambda: {str(k): v for k, v in sampling.FINEWEB2_REHYDRATION.items()})
    """Cluster-size threshold → copies, for sources with rehydrate: true (default: FineWeb-2's table)."""
    cluster_size_field: str = "minhash_cluster_size"
    """Record field (top level or under "metadata") holding the duplicate-cluster size from `corpus build`."""
    text_field: str = "text"
    """Name of the text field in the input records."""
    tokens_per_shard: int = 50_000_000
    """Approximate tokens per output shard."""
    batch_size: int = 1000
    """Documents per tokenizer batch (the Rust tokenizer encodes a batch on all cores)."""
    seed: int = 0
    """Seed of the draw and of the shuffle: the same config and seed give byte-identical shards."""
    write_shards: bool = True
    """false: only plan and write the report (a dry run for tuning weights)."""
    validation_documents: int = 0
    """Documents per language held out of the draw (at most half of a language's documents) and written to
    OUTPUT/validation/<lang>.jsonl.gz, for pretrain's data.validation: held-out text the mixture never repeats."""

    def __post_init__(self):
        if not self.tokenizer:
            raise UserError("key 'tokenizer' is required: the tokenizer directory the model trains with")
        if not self.output:
            raise UserError("key 'output' is required: the directory for the mixture and its report")
        if not self.sources:
            raise UserError("key 'sources' is empty; list at least one {name, lang, paths} per language")
        for i, source in enumerate(self.sources):
            source.name = source.name or f"{source.lang}_{i}"
        names = [s.name for s in self.sources]
        bad = next((n for n in names if not re.fullmatch(r"[\w.-]+", n)), None)
        if bad is not None:
            raise UserError(f"key 'sources': name {bad!r} may only contain letters, digits, '_', '-' and '.'")
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate:
            raise UserError(f"key 'sources': name {duplicate!r} is used twice; give each source a unique name")
        if not 0 <= self.alpha <= 1:
            raise UserError(f"key 'alpha' is {self.alpha}; it must lie in [0, 1] (0.3 as in XLM-R/mT5)")
        if self.weights and self.method != "weights":
            log.warning("key 'weights' is ignored with method %r; set method: weights to use it", self.method)
        if self.method == "weights":
            if not self.weights:
                raise UserError("method 'weights' needs key 'weights', e.g. {ko: 9, en: 1}")
            self.weights = sampling.normalize_weights({normalize_language(k): v for k, v in self.weights.items()})
        if self.method == "unimax" and not self.max_epochs > 0:
            raise UserError(f"key 'max_epochs' is {self.max_epochs}; UniMax needs a positive epoch cap, e.g. 4")
        for key in ("total_tokens", "validation_documents", "tokens_per_shard", "batch_size"):
            minimum = 0 if key in ("total_tokens", "validation_documents") else 1
            if getattr(self, key) < minimum:
                raise UserError(f"key '{key}' is {getattr(self, key)}; it must be ≥ {minimum}")
        for threshold, weight in self.rehydration.items():
            if not str(threshold).isdigit() or int(threshold) < 1 or weight < 0:
                raise UserError(f"key 'rehydration.{threshold}': thresholds are cluster sizes ≥ 1 and weights ≥ 0")

    def rehydration_table(self) -> dict[int, float]:
        return {int(k): float(v) for k, v in self.rehydration.items()}


@dataclass
class SourceCounts:
    """Per-document arrays of one source, in file order: tokens [D] and duplicate-cluster size [D]."""
    files: list[str]
    tokens: np.ndarray
    cluster_sizes: np.ndarray


def _cluster_size(record: dict, key: str) -> int:
    """Duplicate-cluster size at the top level (`corpus build` output) or under a datatrove "metadata" dict."""
    value = record.get(key)
    if value is None and isinstance(record.get("metadata"), dict):
        value = record["metadata"].get(key)
    return max(int(value), 1) if isinstance(value, (int, float)) and not isinstance(value, bool) else 1


def _fingerprint(files: list[str], tokenizer, cfg: MixConfig) -> str:
    return cache_key(files, tokenizer.backend_tokenizer.to_str(), f"{cfg.text_field}|{cfg.cluster_size_field}")


def count_tokens(source: SourceConfig, tokenizer, cfg: MixConfig, rejects: RejectCounter) -> SourceCounts:
    """Pass 1: tokens and cluster size of every readable document of ``source`` (cached by fingerprint)."""
    files = expand_inputs(source.paths)
    cache = Path(cfg.output) / "token_counts" / f"{source.name}.{_fingerprint(files, tokenizer, cfg)}.npz"
    if cache.is_file():
        with np.load(cache) as saved:
            for r in json.loads(str(saved["rejected"])):
                rejects.add(**r)
            return SourceCounts(files, saved["tokens"], saved["cluster_sizes"])
    local = RejectCounter()
    tokens: list[int] = []
    sizes: list[int] = []
    batch: list[str] = []
    encode = tokenizer.backend_tokenizer.encode_batch_fast

    def flush():
        # Whitespace-only text counts as empty (0 tokens): it would otherwise pass as "▁▁▁" pieces.
        tokens.extend(len(e.ids) if text.strip() else 0 for text, e in zip(batch, encode(batch, add_special_tokens=False)))
        batch.clear()

    for record in phase(iter_records(files, local, text_field=cfg.text_field), desc=f"count {source.name}", unit="doc"):
        batch.append(record[cfg.text_field])
        sizes.append(_cluster_size(record, cfg.cluster_size_field))
        if len(batch) >= cfg.batch_size:
            flush()
    flush()
    counts = SourceCounts(files, np.array(tokens, dtype=np.int64), np.array(sizes, dtype=np.int64))
    cache.parent.mkdir(parents=True, exist_ok=True)
    for stale in cache.parent.glob(f"{source.name}.*.npz"):  # counts of older versions of these files
        if "." not in stale.name[len(source.name) + 1:-len(".npz")]:  # not another source named "<name>.x"
            stale.unlink()
    with tempfile.NamedTemporaryFile(dir=cache.parent, suffix=".npz", delete=False) as tmp:
        np.savez(tmp, tokens=counts.tokens, cluster_sizes=counts.cluster_sizes, rejected=json.dumps(local.rejected))
    os.replace(tmp.name, cache)
    for r in local.rejected:
        rejects.add(**r)
    return counts


def hold_out(cfg: MixConfig, counts: dict[str, SourceCounts]) -> dict[str, np.ndarray]:
    """Per source, a mask [D] of documents kept out of the draw for validation: ``validation_documents`` per
    language (at most half of its non-empty documents), drawn with a stream of their own so that changing
    the validation size does not change which copies the mixture draws."""
    masks = {s.name: np.zeros(len(counts[s.name].tokens), dtype=bool) for s in cfg.sources}
    rng = np.random.default_rng([cfg.seed, 1])
    for lang in dict.fromkeys(s.lang for s in cfg.sources):
        members = [s.name for s in cfg.sources if s.lang == lang]
        candidates = [np.flatnonzero(counts[name].tokens > 0) for name in members]
        sizes = np.cumsum([len(c) for c in candidates])  # candidates of all sources, end to end
        k = min(cfg.validation_documents, int(sizes[-1]) // 2)
        for position in rng.choice(int(sizes[-1]), size=k, replace=False):
            which = int(np.searchsorted(sizes, position, side="right"))
            start = int(sizes[which - 1]) if which else 0
            masks[members[which]][candidates[which][position - start]] = True
    return masks


def _output_record(record: dict, source: SourceConfig, text_field: str) -> dict:
    out = {"text": record[text_field], "lang": source.lang, "source": source.name}
    if "id" in record:
        out["id"] = record["id"]
    return out


def _write_validation(cfg: MixConfig, counts: dict[str, SourceCounts], masks: dict[str, np.ndarray]) -> dict:
    """Write the held-out documents as OUTPUT/validation/<lang>.jsonl.gz; returns {lang: path}."""
    by_lang: dict[str, list[dict]] = {}
    for source in cfg.sources:
        wanted = set(np.flatnonzero(masks[source.name]).tolist())
        if not wanted:
            continue
        for index, record in enumerate(iter_records(counts[source.name].files, RejectCounter(), text_field=cfg.text_field)):
            if index in wanted:
                by_lang.setdefault(source.lang, []).append(_output_record(record, source, cfg.text_field))
    directory = Path(cfg.output) / "validation"
    for old in directory.glob("*.jsonl.gz"):  # languages of an earlier run
        old.unlink()
    paths = {}
    for lang, records in by_lang.items():
        write_jsonl(directory / f"{lang}.jsonl.gz", records)
        paths[lang] = f"validation/{lang}.jsonl.gz"
    return paths


def plan(cfg: MixConfig, counts: dict[str, SourceCounts]) -> dict:
    """Token budgets per language and per source, and the per-document weights the draw uses."""
    available_by_lang: dict[str, float] = {}
    for source in cfg.sources:
        available_by_lang[source.lang] = available_by_lang.get(source.lang, 0) + float(counts[source.name].tokens.sum())
    empty = [lang for lang, n in available_by_lang.items() if n <= 0]
    if empty:
        files = [f for s in cfg.sources if s.lang == empty[0] for f in counts[s.name].files]
        raise UserError(f"language {empty[0]!r} has no data: no non-empty '{cfg.text_field}' in {', '.join(files[:3])}; fix the paths or drop the source")
    total = float(cfg.total_tokens or sum(available_by_lang.values()))
    lang_budget = sampling.language_budgets(
        available_by_lang, total, cfg.method, alpha=cfg.alpha, weights=cfg.weights, max_epochs=cfg.max_epochs,
        replay_lang=cfg.replay.lang if cfg.replay.share is not None else None, replay_share=cfg.replay.share,
    )
    table = cfg.rehydration_table()
    doc_weights, effective = {}, {}
    for source in cfg.sources:
        c = counts[source.name]
        w = sampling.rehydration_weights(c.cluster_sizes, table) if source.rehydrate else np.ones(len(c.tokens))
        doc_weights[source.name] = w * (c.tokens > 0)  # an empty document can never fill any budget
        effective[source.name] = source.upsample * float((c.tokens * doc_weights[source.name]).sum())
    source_budget = {}
    for lang, budget in lang_budget.items():
        members = {s.name: effective[s.name] for s in cfg.sources if s.lang == lang}
        source_budget.update(sampling.split_budget(budget, members))
    return {"total": total, "available_by_lang": available_by_lang, "lang_budget": lang_budget,
            "source_budget": source_budget, "effective": effective, "doc_weights": doc_weights}


MAX_OPEN_BUCKETS = 256  # temporary files written at once in pass 2 (well below the usual 1024-descriptor limit)


def _scatter(cfg: MixConfig, copies: dict[str, np.ndarray], counts: dict[str, SourceCounts],
             rng: np.random.Generator, work: Path, n_buckets: int) -> list[np.ndarray]:
    """Stream every source once and append each drawn copy to a random bucket file.

    Returns, per bucket, the source index of each of its lines [lines] (for per-language shard counts).
    """
    files = [open(work / f"bucket-{b:05d}.jsonl", "wb") for b in range(n_buckets)]
    line_sources: list[list[np.ndarray]] = [[] for _ in range(n_buckets)]
    try:
        for source_index, source in enumerate(cfg.sources):
            c = copies[source.name]
            targets = rng.integers(n_buckets, size=int(c.sum()))  # bucket of every copy, in document order
            for b, n in enumerate(np.bincount(targets, minlength=n_buckets)):
                line_sources[b].append(np.full(n, source_index, dtype=np.int32))
            ends = np.cumsum(c)
            wanted = iter(np.flatnonzero(c).tolist())
            next_doc = next(wanted, None)
            records = iter_records(counts[source.name].files, RejectCounter(), text_field=cfg.text_field)
            for index, record in enumerate(phase(records, desc=f"write {source.name}", unit="doc", total=len(c))):
                if next_doc is None:
                    break
                if index != next_doc:
                    continue
                line = (json.dumps(_output_record(record, source, cfg.text_field), ensure_ascii=False) + "\n").encode("utf-8")
                for b in targets[ends[index] - c[index]:ends[index]]:
                    files[b].write(line)
                next_doc = next(wanted, None)
    finally:
        for f in files:
            f.close()
    # Lines of a bucket were appended source by source, in the same order as these arrays.
    return [np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32) for parts in line_sources]


def _line_offsets(path: Path) -> np.ndarray:
    offsets, position = [], 0
    with open(path, "rb") as f:
        for line in f:
            offsets.append(position)
            position += len(line)
    return np.array(offsets, dtype=np.int64)


def _write_shards(cfg: MixConfig, copies: dict[str, np.ndarray], counts: dict[str, SourceCounts],
                  rng: np.random.Generator) -> list[dict]:
    """Pass 2: scatter drawn copies to random buckets, then write each bucket's lines in a random order as
    one or more gzip shards (reading lines by offset, so memory holds only offsets); finally swap the new
    mixture directory into place, so a killed run never leaves a mix of old and new shards."""
    drawn_tokens = sum(int((copies[n] * counts[n].tokens).sum()) for n in copies)
    n_shards = max(1, math.ceil(drawn_tokens / cfg.tokens_per_shard))
    n_buckets = min(n_shards, MAX_OPEN_BUCKETS)
    langs = np.array([s.lang for s in cfg.sources])
    final = Path(cfg.output) / "mixture"
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=final.parent, prefix=".mixture."))
    try:
        line_sources = _scatter(cfg, copies, counts, rng, work, n_buckets)
        shards = []
        shard_ids = np.array_split(np.arange(n_shards), n_buckets)  # buckets hold equal expected shares
        for b in range(n_buckets):
            bucket = work / f"bucket-{b:05d}.jsonl"
            offsets = _line_offsets(bucket)
            order = rng.permutation(len(offsets))
            with open(bucket, "rb") as src:
                for shard, lines in zip(shard_ids[b], np.array_split(order, len(shard_ids[b]))):
                    name = f"mixture-{shard:05d}.jsonl.gz"
                    # mtime=0 and no file name in the gzip header: the same seed gives byte-identical shards.
                    with open(work / name, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0) as out:
                        for j in lines:
                            src.seek(offsets[j])
                            out.write(src.readline())
                    by_lang = dict(zip(*np.unique(langs[line_sources[b][lines]], return_counts=True)))
                    shards.append({"path": f"mixture/{name}", "documents": int(len(lines)),
                                   "documents_by_lang": {str(k): int(v) for k, v in by_lang.items()}})
            bucket.unlink()
        old = final.with_name(".mixture.old")
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            os.replace(final, old)
        os.chmod(work, 0o755)
        os.replace(work, final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return sorted(shards, key=lambda shard: shard["path"])


def write_reports(cfg: MixConfig, counts: dict[str, SourceCounts], planned: dict, copies: dict[str, np.ndarray],
                  shards: list[dict], rejects: RejectCounter, held: dict) -> dict:
    """report.json, report.md and (with shards) manifest.json: available, planned and drawn tokens, epochs, shares."""
    drawn = {n: int((copies[n] * counts[n].tokens).sum()) for n in copies}
    total_drawn = max(sum(drawn.values()), 1)
    sources = []
    for s in cfg.sources:
        available = int(counts[s.name].tokens.sum())
        sources.append({
            "name": s.name, "lang": s.lang, "files": len(counts[s.name].files), "documents": len(counts[s.name].tokens),
            "upsample": s.upsample, "rehydrate": s.rehydrate, "tokens_available": available,
            "tokens_effective": round(planned["effective"][s.name]), "tokens_planned": round(planned["source_budget"][s.name]),
            "tokens_drawn": drawn[s.name], "documents_drawn": int(copies[s.name].sum()),
            "epochs": drawn[s.name] / available, "share": drawn[s.name] / total_drawn,
            "validation_documents": held["documents"][s.name], "validation_tokens": held["tokens"][s.name],
        })
    languages = {}
    for lang, available in planned["available_by_lang"].items():
        got = sum(r["tokens_drawn"] for r in sources if r["lang"] == lang)
        languages[lang] = {"tokens_available": int(available), "tokens_planned": round(planned["lang_budget"][lang]),
                           "tokens_drawn": got, "epochs": got / available,
                           "planned_share": planned["lang_budget"][lang] / planned["total"], "share": got / total_drawn,
                           "validation_documents": sum(r["validation_documents"] for r in sources if r["lang"] == lang),
                           "validation_tokens": sum(r["validation_tokens"] for r in sources if r["lang"] == lang)}
    report = {"method": cfg.method, "alpha": cfg.alpha, "max_epochs": cfg.max_epochs, "weights": cfg.weights,
              "replay": {"lang": cfg.replay.lang, "share": cfg.replay.share}, "seed": cfg.seed,
              "tokenizer": cfg.tokenizer, "total_budget": round(planned["total"]), "tokens_drawn": sum(drawn.values()),
              "languages": languages, "sources": sources, "validation": held["paths"], "rejected": rejects.by_reason()}
    output = Path(cfg.output)
    write_json(output / "report.json", report)
    write_text(output / "report.md", _report_markdown(report))
    if shards:
        write_json(output / "manifest.json", {
            "format": "jsonl.gz", "fields": ["text", "lang", "source", "id"], "tokenizer": cfg.tokenizer,
            "seed": cfg.seed, "method": cfg.method, "tokens_drawn": report["tokens_drawn"],
            "tokens_drawn_by_lang": {lang: v["tokens_drawn"] for lang, v in languages.items()}, "shards": shards,
            "validation": held["paths"],
        })
    return report


def _report_markdown(report: dict) -> str:
    method = {"temperature": f"temperature sampling, alpha = {report['alpha']}",
              "unimax": f"UniMax, at most {report['max_epochs']} epochs per language",
              "weights": f"explicit weights {report['weights']}"}[report["method"]]
    replay = report["replay"]
    lines = [
        "# Mixture report", "",
        f"Method: {method}" + (f"; replay {replay['lang']} = {replay['share']:.1%}" if replay["share"] is not None else ""),
        f"Budget: {report['total_budget']:,} tokens; drawn: {report['tokens_drawn']:,} (seed {report['seed']}, "
        f"tokens measured with {report['tokenizer']}).", "",
        "| language | tokens available | planned | drawn | epochs | planned share | drawn share |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for lang, v in report["languages"].items():
        lines.append(f"| {lang} | {v['tokens_available']:,} | {v['tokens_planned']:,} | {v['tokens_drawn']:,} | "
                     f"{v['epochs']:.2f} | {v['planned_share']:.2%} | {v['share']:.2%} |")
    lines += ["", "| source | lang | documents | tokens available | upsample | rehydrate | planned | drawn | epochs | share |",
              "|---|---|---:|---:|---:|---|---:|---:|---:|---:|"]
    for r in report["sources"]:
        lines.append(f"| {r['name']} | {r['lang']} | {r['documents']:,} | {r['tokens_available']:,} | {r['upsample']:g} | "
                     f"{'yes' if r['rehydrate'] else 'no'} | {r['tokens_planned']:,} | {r['tokens_drawn']:,} | "
                     f"{r['epochs']:.2f} | {r['share']:.2%} |")
    if report["validation"]:
        lines += ["", "Held out of the draw for validation: " + ", ".join(
            f"{lang} {report['languages'][lang]['validation_documents']:,} documents / "
            f"{report['languages'][lang]['validation_tokens']:,} tokens ({path})" for lang, path in report["validation"].items())]
    if report["rejected"]:
        lines += ["", "Unreadable records (see rejected.jsonl): " + ", ".join(f"{k}: {v}" for k, v in report["rejected"].items())]
    return "\n".join(lines) + "\n"


def run(cfg: MixConfig) -> dict:
    from ..model.checkpoint import load_tokenizer

    tokenizer = load_tokenizer(cfg.tokenizer)
    output = Path(cfg.output)
    rejects = RejectCounter()
    counts = {s.name: count_tokens(s, tokenizer, cfg, rejects) for s in cfg.sources}
    held_out = hold_out(cfg, counts)
    # Held-out documents count as empty for planning and drawing: they are never in the mixture.
    held_out_tokens = {name: int(counts[name].tokens[mask].sum()) for name, mask in held_out.items()}
    counts = {name: SourceCounts(c.files, np.where(held_out[name], 0, c.tokens), c.cluster_sizes) for name, c in counts.items()}
    planned = plan(cfg, counts)
    rng = np.random.default_rng(cfg.seed)
    copies = {s.name: sampling.repeat_counts(counts[s.name].tokens, planned["doc_weights"][s.name],
                                             planned["source_budget"][s.name], rng)
              for s in cfg.sources}
    shards = _write_shards(cfg, copies, counts, rng) if cfg.write_shards else []
    validation = _write_validation(cfg, counts, held_out) if cfg.write_shards and cfg.validation_documents else {}
    if rejects.count:
        write_jsonl(output / "rejected.jsonl", rejects.rejected)
    held = {"documents": {n: int(m.sum()) for n, m in held_out.items()}, "tokens": held_out_tokens, "paths": validation}
    report = write_reports(cfg, counts, planned, copies, shards, rejects, held)
    write_resolved_config(cfg, output, "corpus mix")
    for lang, v in report["languages"].items():
        if v["epochs"] > max(REPEAT_WARNING_EPOCHS, cfg.max_epochs if cfg.method == "unimax" else 0):
            log.warning("language %s is repeated %.1f times (%s tokens available); consider method: unimax, "
                        "more data or a smaller total_tokens", lang, v["epochs"], f"{v['tokens_available']:,}")
    return {"output": str(output), "shards": len(shards), "tokens_drawn": report["tokens_drawn"],
            "languages": {lang: round(v["share"], 4) for lang, v in report["languages"].items()},
            "rejected": rejects.count}
