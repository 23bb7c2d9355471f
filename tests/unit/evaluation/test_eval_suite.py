"""Suites: validation at start, per-pair errors in the results, and the (checkpoint, task) cache."""

from pathlib import Path

import pytest
from eval_helpers import write_jsonl

from polyglot_llama.errors import UserError
from polyglot_llama.evaluation.checkpoints import display_names
from polyglot_llama.evaluation.suite import EvalConfig, load_suite, run

REPO_EVAL = Path(__file__).resolve().parents[3] / "eval"


def _suite(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def test_unknown_task_kind_fails_at_start_with_one_line(tmp_path):
    suite = _suite(tmp_path, "tasks:\n  - {name: x, kind: bogus, data: {files: [a.jsonl]}}\n")
    with pytest.raises(UserError) as err:
        run(EvalConfig(suite=str(suite), model=[str(tmp_path / "never_loaded")], output=str(tmp_path / "out")))
    message = str(err.value)
    assert "unknown task kind 'bogus'" in message and "perplexity" in message and "\n" not in message
    assert not (tmp_path / "out").exists()


def test_unknown_task_key_and_duplicate_names_are_errors(tmp_path):
    suite = _suite(tmp_path, "tasks:\n  - {kind: perplexity, data: {files: [a.jsonl]}, strid: 3}\n")
    with pytest.raises(UserError, match="unknown key 'strid'"):
        load_suite(suite)
    suite = _suite(tmp_path, "tasks:\n  - {name: a, kind: perplexity, data: {files: [x]}}\n"
                             "  - {name: a, kind: perplexity, data: {files: [y]}}\n")
    with pytest.raises(UserError, match="two tasks are named 'a'"):
        load_suite(suite)


def test_harness_kind_without_the_package_says_so(tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lm_eval" else find_spec(name, *a))
    suite = _suite(tmp_path, "tasks:\n  - {kind: lm_eval_harness, tasks: [xnli_de]}\n")
    with pytest.raises(UserError, match="lm-evaluation-harness, which is not installed; pip install lm-eval"):
        load_suite(suite)


def test_tasks_subset_by_name():
    name, tasks = load_suite(REPO_EVAL / "default.yaml", ["translation", "capitals"])
    assert name == "polyglot-default" and [t.name for t in tasks] == ["capitals", "translation"]
    with pytest.raises(UserError, match="--tasks 'belebele' is not in"):
        load_suite(REPO_EVAL / "default.yaml", ["belebele"])


def test_bundled_suites_load(tmp_path):
    for suite in ("default.yaml", "quick.yaml", "reward.yaml"):
        name, tasks = load_suite(REPO_EVAL / suite)
        assert tasks and all(Path(f).is_file() for t in tasks for f in t.data.files)


def test_cache_reuses_unchanged_pairs_and_recomputes_changed_ones(tmp_path, multi_model_dir):
    data = write_jsonl(tmp_path / "docs.jsonl", [{"lang": "en", "text": "The shop opens at nine."}])
    suite = _suite(tmp_path, f"tasks:\n  - {{name: ppl, kind: perplexity, data: {{files: [{data.name}]}}}}\n"
                             "  - {name: broken, kind: perplexity, data: {files: [missing.jsonl]}}\n")
    cfg = EvalConfig(suite=str(suite), model=[str(multi_model_dir), str(tmp_path / "no_model")],
                     output=str(tmp_path / "out"), device="cpu", dtype="float32")
    first = run(cfg)
    assert (first["computed"], first["reused"]) == (1, 0)
    assert len(first["errors"]) == 3  # missing data file for the model; both tasks for the missing model
    assert any("missing.jsonl" in e and "matches no file" in e for e in first["errors"])
    second = run(cfg)
    assert (second["computed"], second["reused"]) == (0, 1)
    assert second["headline"]["ppl"] == first["headline"]["ppl"]
    write_jsonl(data, [{"lang": "en", "text": "The shop opens at ten."}])
    third = run(cfg)
    assert (third["computed"], third["reused"]) == (1, 0)
    assert third["headline"]["ppl"] != first["headline"]["ppl"]
    assert run(EvalConfig(**{**cfg.__dict__, "refresh": True}))["computed"] == 1


def test_a_checkpoint_that_does_not_load_is_reported_not_fatal(tmp_path, multi_model_dir):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(multi_model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    data = write_jsonl(tmp_path / "docs.jsonl", [{"lang": "en", "text": "The shop opens at nine."}])
    suite = _suite(tmp_path, f"tasks:\n  - {{name: ppl, kind: perplexity, data: {{files: [{data.name}]}}}}\n")
    summary = run(EvalConfig(suite=str(suite), model=[str(broken), str(multi_model_dir)], output=str(tmp_path / "out"),
                             device="cpu", dtype="float32"))
    assert summary["computed"] == 1 and len(summary["errors"]) == 1
    assert summary["errors"][0].startswith("ppl / broken: model could not be loaded:")
    assert summary["headline"]["ppl"]["broken"] is None and summary["headline"]["ppl"]["model"] > 0


def test_display_names_are_unique():
    assert display_names(["/runs/a/model", "/runs/b/model"]) == ["a/model", "b/model"]
    assert display_names(["/x/base", "/y/chat"]) == ["base", "chat"]


def test_failed_pairs_exit_2_with_the_other_results_written(tmp_path, en_model_dir, multi_model_dir, multi_tokenizer_dir, capsys):
    import json
    import shutil

    from polyglot_llama.cli import main

    # A tokenizer of 2000 tokens on a model with 512 embedding rows: a per-checkpoint error, not an IndexError.
    mismatched = tmp_path / "mismatched"
    shutil.copytree(en_model_dir, mismatched)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (multi_tokenizer_dir / name).is_file():
            shutil.copy(multi_tokenizer_dir / name, mismatched / name)
    data = write_jsonl(tmp_path / "docs.jsonl", [{"lang": "en", "text": "서울은 한국의 수도입니다. The shop opens at nine."}])
    suite = _suite(tmp_path, f"tasks:\n  - {{name: ppl, kind: perplexity, data: {{files: [{data.name}]}}}}\n")
    out = tmp_path / "out"
    code = main(["eval", "--suite", str(suite), "--model", str(mismatched), "--model", str(multi_model_dir),
                 "--output", str(out), "--device", "cpu", "--dtype", "float32"])
    err = capsys.readouterr().err
    assert code == 2
    assert "1 requested result(s) failed" in err and "tokenizer has 2000 tokens" in err
    results = {t["name"]: t["results"] for t in json.loads((out / "results.json").read_text())["tasks"]}
    assert "embeddings have 512 rows" in results["ppl"]["mismatched"]["error"]
    assert results["ppl"]["model"]["languages"]["en"]["bits_per_byte"] > 0
    assert (out / "report.html").is_file()
    # Every pair computed (here: the good checkpoint alone, from the cache): exit 0.
    assert main(["eval", "--suite", str(suite), "--model", str(multi_model_dir), "--output", str(out),
                 "--device", "cpu", "--dtype", "float32"]) == 0
