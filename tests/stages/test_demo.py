"""The reduced demo (`polyglot-llama demo --quick`) runs every stage end to end and resumes."""

import json

from polyglot_llama.cli import main


def test_quick_demo_produces_every_stage_output(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    expected = {
        "corpus/ko/stats.md", "corpus/en/stats.md", "tokenizer_en/tokenizer.json", "base/model.safetensors",
        "tokenizer_ext/tokenizer.json", "fertility/fertility.json", "extended/new_tokens.json", "mix/manifest.json",
        "adapted/forgetting.md", "sft/model.safetensors", "rm_helpfulness/model.safetensors",
        "rm_safety/model.safetensors", "rs_round1/report.json", "ppo/summary.json", "dpo/dpo_results.json", "gatt/gatt.jsonl",
        "chat/model.safetensors", "eval/report.html", "summary.md",
    }
    missing = sorted(p for p in expected if not (out / p).exists())
    assert not missing, missing
    configs = sorted(p.name for p in (out / "configs").glob("*.yaml"))
    assert len(configs) == 19 and configs[0] == "01_corpus_build.yaml" and configs[-1] == "19_eval.yaml"

    summary = json.loads((out / "summary.json").read_text())
    assert [s["stage"] for s in summary["steps"]][-1] == "eval"
    before, after = summary["perplexity"]["before"]["ko"], summary["perplexity"]["after"]["ko"]
    assert after["loss"] < before["loss"] - 1.0  # continued pretraining learns Korean
    kept = json.loads((out / "corpus" / "ko" / "stats.json").read_text())
    assert kept["documents_kept"] == 60  # the 60 Korean paragraphs; junk, copies and other languages rejected
    html = (out / "eval" / "report.html").read_text()
    assert "base" in html and "adapted" in html and "chat" in html
    assert "[19] eval" in printed

    # A second run reuses every finished step.
    assert main(["demo", "--quick", "--output", str(out)]) == 0
    rerun = json.loads((out / "summary.json").read_text())
    assert {s["status"] for s in rerun["steps"]} == {"reused"}
