"""`polyglot-llama eval` end to end: two checkpoints in one report, bad input counted, the cache reused."""

import json
from pathlib import Path

import torch

from polyglot_llama.cli import main

DATA = Path(__file__).resolve().parents[2] / "eval" / "data"


def _train_briefly(model_dir: Path, output: Path, texts: list[str], steps: int = 12) -> Path:
    """The tiny model after a few full-batch AdamW steps on English text: a checkpoint that should beat its base."""
    from polyglot_llama.model.checkpoint import load_causal_lm, load_tokenizer, save_checkpoint

    torch.manual_seed(0)
    model, tokenizer = load_causal_lm(model_dir), load_tokenizer(model_dir)
    batch = [ids[:64] for ids in tokenizer(texts, padding=False)["input_ids"]]
    width = max(map(len, batch))
    ids = torch.tensor([row + [tokenizer.eos_token_id] * (width - len(row)) for row in batch])
    labels = torch.tensor([row + [-100] * (width - len(row)) for row in batch])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    save_checkpoint(model, output, tokenizer_dir=model_dir)
    return output


def _suite(tmp_path: Path) -> Path:
    bad = tmp_path / "mc_with_bad_rows.jsonl"
    rows = [json.loads(line) for line in (DATA / "multiple_choice.jsonl").read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if r["lang"] in ("en", "ko")][::10] + [{"lang": "en", "prompt": "no choices", "answer": 0}]
    bad.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"""
name: stage-test
tasks:
  - {{name: perplexity, kind: perplexity, data: {{files: ["{DATA}/heldout.jsonl"], languages: [en, ko], limit: 4}}}}
  - {{name: mc, kind: multiple_choice, prompt: "{{prompt}}", data: {{files: ["{bad}"], languages: [en, ko, de]}}}}
  - {{name: capitals, kind: generation, prompt: "{{prompt}}", max_new_tokens: 3, metrics: [exact_match, chrf],
      data: {{files: ["{DATA}/capitals.jsonl"], languages: [en, zh], limit: 2}}}}
  - {{name: safety, kind: safety, max_new_tokens: 4, data: {{files: ["{DATA}/unsafe_prompts.csv"], languages: [en, ko], limit: 2}}}}
""", encoding="utf-8")
    return suite


def test_eval_compares_two_checkpoints_in_one_report(tmp_path, multi_model_dir, capsys):
    sample = DATA.parents[1] / "polyglot_llama" / "resources" / "sample_text" / "en.jsonl"
    english = [json.loads(line)["text"] for line in sample.read_text(encoding="utf-8").splitlines()][:8]
    trained = _train_briefly(multi_model_dir, tmp_path / "trained", english)
    out = tmp_path / "eval"
    argv = ["eval", "--suite", str(_suite(tmp_path)), "--model", str(multi_model_dir), "--model", str(trained),
            "--output", str(out), "--device", "cpu", "--batch-size", "16"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["models"] == ["model", "trained"] and summary["computed"] == 8 and summary["errors"] == []

    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    tasks = {t["name"]: t["results"] for t in results["tasks"]}
    base_bpb = tasks["perplexity"]["model"]["languages"]["en"]["bits_per_byte"]
    trained_bpb = tasks["perplexity"]["trained"]["languages"]["en"]["bits_per_byte"]
    assert trained_bpb < base_bpb - 0.5, (base_bpb, trained_bpb)  # training on English text helps held-out English
    mc = tasks["mc"]["model"]
    assert mc["problems"] == {"missing column 'choices'": 1, "language 'de' has no examples": 1}
    assert set(mc["languages"]) == {"en", "ko"} and mc["languages"]["en"]["n"] == 3
    assert set(tasks["safety"]["trained"]["breakdowns"]["category"]) >= {"Crimes and illegal activities"}

    markdown = (out / "results.md").read_text(encoding="utf-8")
    assert "| language | model | trained |" in markdown and "language 'de' has no examples ×1" in markdown
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count("<h2>") == 5 and "<th>trained</th>" in page  # overview + one section per task
    assert all((out / "plots" / f"{t}.png").stat().st_size > 5000 for t in tasks)
    assert (out / "predictions" / "trained" / "capitals.jsonl").is_file()
    assert (out / "rejects" / "model" / "mc.jsonl").is_file()

    assert main(argv) == 0  # unchanged checkpoints and tasks: everything comes from the cache
    again = json.loads(capsys.readouterr().out)
    assert (again["computed"], again["reused"]) == (0, 8) and again["headline"] == summary["headline"]


def test_unknown_task_kind_is_a_one_line_error(tmp_path, capsys):
    suite = tmp_path / "suite.yaml"
    suite.write_text("tasks:\n  - {kind: belebele, data: {files: [x.jsonl]}}\n", encoding="utf-8")
    assert main(["eval", "--suite", str(suite), "--model", "m", "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("polyglot-llama eval: error:") and "unknown task kind 'belebele'" in err
    assert len(err.splitlines()) == 1
