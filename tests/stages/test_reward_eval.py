"""`polyglot-llama reward eval` end to end on a saved RM, and the `reward` task kind of an eval suite."""

import json
from collections import defaultdict
from pathlib import Path

import pytest

from polyglot_llama.cli import main

PAIRS = Path(__file__).resolve().parents[2] / "eval" / "data" / "reward_pairs.jsonl"


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory, multi_model_dir):
    from polyglot_llama.model.checkpoint import save_checkpoint
    from polyglot_llama.model.reward_model import build_reward_model

    out = tmp_path_factory.mktemp("rm") / "rm"
    save_checkpoint(build_reward_model(multi_model_dir, seed=1), out, tokenizer_dir=multi_model_dir)
    return out


def _pairs_file(tmp_path: Path) -> Path:
    rows = [json.loads(line) for line in PAIRS.read_text(encoding="utf-8").splitlines()]
    rows = [r for i, r in enumerate(rows) if i % 10 < 3]  # 6 per language, both strengths
    rows += [{"prompt": "Hi", "chosen": "Hello", "rejected": "Hello", "lang": "en"}, {"prompt": "Hi", "chosen": "Hello"}]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _hand_accuracy(rm_dir: Path, rows: list[dict]) -> dict[str, float]:
    from polyglot_llama.model.reward_model import load_reward_model, score

    model, tokenizer = load_reward_model(rm_dir)
    chosen = score(model, tokenizer, [r["prompt"] for r in rows], [r["chosen"] for r in rows]).tolist()
    rejected = score(model, tokenizer, [r["prompt"] for r in rows], [r["rejected"] for r in rows]).tolist()
    hits = defaultdict(list)
    for row, c, r in zip(rows, chosen, rejected):
        hits[row["lang"]].append(c > r)
    return {lang: sum(h) / len(h) for lang, h in hits.items()}


def test_reward_eval_reports_accuracy_per_language_and_strength(tmp_path, rm_dir, capsys):
    pairs = _pairs_file(tmp_path)
    out = tmp_path / "out"
    assert main(["reward", "eval", "--model", str(rm_dir), "--data", str(pairs), "--output", str(out),
                 "--device", "cpu", "--batch-size", "16", "--bins", "4"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["pairs"] == 30 and summary["rejected"] == 2

    report = json.loads((out / "reward_eval.json").read_text(encoding="utf-8"))
    valid = [json.loads(line) for line in pairs.read_text(encoding="utf-8").splitlines()][:30]
    expected = _hand_accuracy(rm_dir, valid)
    assert {k: v["accuracy"] for k, v in report["languages"].items()} == pytest.approx(expected, abs=1e-9)
    assert set(report["strength"]) == {"significantly_better", "better"}
    assert sum(b["n"] for b in report["calibration"]) == 30 and len(report["calibration"]) == 4
    assert report["rejected"] == {"identical chosen and rejected": 1, "missing field 'rejected'": 1}
    for name in ("score_distribution.png", "accuracy_vs_score_difference.png", "accuracy_by_language.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert "| significantly_better |" in (out / "reward_eval.md").read_text(encoding="utf-8")
    assert len((out / "scores.jsonl").read_text().splitlines()) == 30

    # The same RM as a checkpoint of an eval suite: the `reward` task kind gives the same accuracies.
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"tasks:\n  - {{name: rm, kind: reward, data: {{files: ['{pairs}']}}}}\n", encoding="utf-8")
    assert main(["eval", "--suite", str(suite), "--model", str(rm_dir), "--output", str(tmp_path / "suite_out"),
                 "--device", "cpu"]) == 0
    results = json.loads((tmp_path / "suite_out" / "results.json").read_text(encoding="utf-8"))
    rm_result = results["tasks"][0]["results"]["rm"]
    assert {k: v["accuracy"] for k, v in rm_result["languages"].items()} == pytest.approx(expected, abs=1e-9)
    assert rm_result["breakdowns"]["strength"]["better"]["n"] == sum(r["strength"] == "better" for r in valid)


def test_unknown_strength_label_is_a_one_line_error(tmp_path, rm_dir, capsys):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "Hi", "chosen": "Hello", "rejected": "Go away", "strength": "much better"}) + "\n")
    assert main(["reward", "eval", "--model", str(rm_dir), "--data", str(pairs), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown strength label 'much better'" in err and "significantly_better" in err and len(err.splitlines()) == 1
