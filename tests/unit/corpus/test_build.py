"""The recipe → datatrove stage list: which stages run, with how many tasks, in which order."""

from __future__ import annotations

import os

from polyglot_llama.corpus.build import CorpusBuildConfig, accounted_steps, build_stages
from polyglot_llama.corpus.recipe import MinhashSection


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
