"""The recipe → datatrove stage list: which stages run, with how many tasks, in which order."""

from __future__ import annotations

import os

import pytest

from polyglot_llama.corpus.build import CorpusBuildConfig, accounted_steps, build_stages
from polyglot_llama.corpus.recipe import MinhashSection
from polyglot_llama.errors import UserError


def _names(stages):
    return [(name, tasks) for name, _, tasks in stages]


def test_stages_with_both_dedups(tmp_path):
    cfg = CorpusBuildConfig(languages=["ko"], output=str(tmp_path), tasks=4)
    assert _names(build_stages(cfg, ["a.jsonl"])) == [
        ("filter", 4), ("exact_find", 1), ("minhash_signatures", 4), ("minhash_buckets", 14),
        ("minhash_clusters", 1), ("write", 4)]
    first = build_stages(cfg, ["a.jsonl"])[0][1]
    assert [getattr(s, "name", "") for s in first][:3] == ["read", "lid", "language"]


def test_stages_without_or_with_one_dedup(tmp_path):
    no_dedup = CorpusBuildConfig(languages=["ko"], output=str(tmp_path), tasks=2, steps=["language", "pii"])
    stages = build_stages(no_dedup, ["a.jsonl"])
    assert _names(stages) == [("filter", 2)]
    exact_only = CorpusBuildConfig(languages=["ko"], output=str(tmp_path), steps=["language", "exact_dedup"], tasks=1)
    assert _names(build_stages(exact_only, ["a.jsonl"])) == [("filter", 1), ("exact_find", 1), ("write", 1)]
    minhash_only = CorpusBuildConfig(languages=["ko"], output=str(tmp_path), steps=["minhash_dedup"], tasks=1,
                                     minhash=MinhashSection(num_buckets=4))
    assert _names(build_stages(minhash_only, ["a.jsonl"])) == [
        ("filter", 1), ("minhash_signatures", 1), ("minhash_buckets", 4), ("minhash_clusters", 1), ("write", 1)]


def test_statistics_follow_the_order_documents_take(tmp_path):
    cfg = CorpusBuildConfig(languages=["ko"], steps=["pii", "language", "minhash_dedup", "exact_dedup"])
    assert accounted_steps(cfg) == ["read", "lid", "pii", "language", "exact_dedup", "minhash_dedup"]


def test_tasks_and_workers_default_to_the_cores_this_process_may_use():
    cores = len(os.sched_getaffinity(0))
    cfg = CorpusBuildConfig(languages=["ko"])
    assert cfg.tasks == cores and cfg.local_workers == cores
    assert CorpusBuildConfig(languages=["ko"], tasks=8, workers=3).local_workers == 3


def test_intermediate_shard_round_trip_is_datatroves_record(tmp_path):
    from datatrove.data import Document

    from polyglot_llama.corpus.reader import ShardReader, ShardWriter

    docs = [Document(text="첫 문서", id="a", metadata={"language": "ko", "language_score": 0.97, "source_file": "x.jsonl",
                                                     "nested": {"tags": ["b", 1]}}),
            Document(text="second", id="b", metadata={})]
    writer = ShardWriter(str(tmp_path))
    for doc in docs:  # the record is datatrove's default one (its non-empty fields), not a format of our own
        assert writer.adapter(doc) == writer._default_adapter(doc)
    with writer:
        for doc in docs:
            writer.write(doc, rank=3)
    assert (tmp_path / "00003.jsonl.zst").is_file()
    back = list(ShardReader(str(tmp_path)).run(rank=3))
    assert [(d.text, d.id, d.metadata) for d in back] == [(d.text, d.id, d.metadata) for d in docs]
    assert list(ShardReader(str(tmp_path)).run(rank=0)) == []  # a task that wrote nothing reads nothing
    (tmp_path / "00001.jsonl.gz").write_bytes(b"")  # an older version's shard: an error, not an empty task
    with pytest.raises(UserError, match="00001.jsonl.gz was written by an older polyglot-llama"):
        list(ShardReader(str(tmp_path)).run(rank=1))


def test_loguru_library_folders_are_scanned_once_per_sys_path(monkeypatch):
    import sys
    import sysconfig

    from loguru import _better_exceptions

    from polyglot_llama.corpus.build import _cache_loguru_lib_dirs

    formatter = _better_exceptions.ExceptionFormatter
    scan = formatter._get_lib_dirs
    scan = getattr(scan, "__wrapped__", scan)  # loguru's own, also when an earlier build in this process wrapped it
    monkeypatch.setattr(formatter, "_get_lib_dirs", staticmethod(scan))  # restored afterwards
    expected = formatter._get_lib_dirs()
    scans = []
    original_get_path = sysconfig.get_path
    monkeypatch.setattr(sysconfig, "get_path", lambda *a, **k: scans.append(a) or original_get_path(*a, **k))
    _cache_loguru_lib_dirs()
    wrapped = formatter.__dict__["_get_lib_dirs"]
    _cache_loguru_lib_dirs()  # idempotent: not wrapped twice
    assert formatter.__dict__["_get_lib_dirs"] is wrapped
    assert formatter().__dict__["_lib_dirs"] == expected
    first = len(scans)
    assert first > 0 and formatter()._lib_dirs == expected and len(scans) == first  # the second handler: no scan
    monkeypatch.setattr(sys, "path", sys.path + ["/elsewhere"])  # a new sys.path is scanned again
    formatter()
    assert len(scans) == 2 * first


def test_build_caches_loguru_scans_before_any_executor_starts(tmp_path, monkeypatch):
    from polyglot_llama.corpus import build

    order = []
    monkeypatch.setattr(build, "_cache_loguru_lib_dirs", lambda: order.append("cache"))

    def no_executor(*args):
        order.append("executor")
        raise KeyboardInterrupt  # stop the build here

    monkeypatch.setattr(build, "_executor", no_executor)
    (tmp_path / "in.jsonl").write_text('{"text": "한국어 문서"}\n', encoding="utf-8")
    cfg = CorpusBuildConfig(languages=["ko"], input=[str(tmp_path / "in.jsonl")], output=str(tmp_path / "out"))
    with pytest.raises(KeyboardInterrupt):
        build.run(cfg)
    assert order == ["cache", "executor"]


def test_executor_description_is_datatroves_content_written_by_orjson(tmp_path):
    import json

    from datatrove.executor.base import ExecutorJSONEncoder

    from polyglot_llama.corpus.build import _executor

    cfg = CorpusBuildConfig(languages=["ko"], input=["x.jsonl"], output=str(tmp_path / "out"), tasks=2)
    executor = None
    for name, pipeline, tasks in build_stages(cfg, ["x.jsonl"]):  # the last one describes every stage before it
        executor = _executor(cfg, name, pipeline, tasks, tmp_path / "logs", executor)
    executor.save_executor_as_json()
    written = (tmp_path / "logs" / "write" / "executor.json").read_text(encoding="utf-8")
    assert json.loads(written) == json.loads(json.dumps(executor, cls=ExecutorJSONEncoder))
    assert '"num_buckets": 14' in written and written.startswith('{\n  "')  # orjson's 2-space indent, not datatrove's 4
