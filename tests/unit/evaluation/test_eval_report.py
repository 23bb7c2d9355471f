"""Report rendering: checkpoints side by side, best value marked, problems and errors listed, HTML escaped."""

from polyglot_llama.evaluation.report import html_report, markdown_report, write_reports

RESULTS = {
    "suite": "t", "suite_file": "t.yaml", "created": "2026-01-01T00:00:00+00:00",
    "models": [{"name": "base", "path": "/m/base", "fingerprint": "aa", "error": None},
               {"name": "<chat>", "path": "/m/chat", "fingerprint": "bb", "error": None}],
    "tasks": [{"name": "ppl", "kind": "perplexity", "primary": "bits_per_byte", "higher_is_better": False, "results": {
        "base": {"languages": {"en": {"bits_per_byte": 1.5, "n": 4}, "ko": {"bits_per_byte": 2.5, "n": 4}},
                 "problems": {"missing column 'text'": 2}, "cached": True},
        "<chat>": {"languages": {"en": {"bits_per_byte": 1.25, "n": 4}, "ko": {"bits_per_byte": 2.5, "n": 4}},
                   "problems": {}, "cached": False}}},
              {"name": "safety", "kind": "safety", "primary": "violation_rate", "higher_is_better": False, "results": {
        "base": {"error": "model could not be loaded: boom", "cached": False},
        "<chat>": {"languages": {"en": {"violation_rate": 0.25, "n": 4}},
                   "breakdowns": {"category": {"Insult": {"violation_rate": 0.5, "n": 2}}}, "cached": False}}}],
}


def test_markdown_has_one_column_per_checkpoint_and_marks_the_best():
    md = markdown_report(RESULTS)
    assert "| language | base | <chat> |" in md
    assert "| en (English) | 1.5 (n=4) | **1.25** (n=4) |" in md
    assert "| ko (Korean) | 2.5 (n=4) | 2.5 (n=4) |" in md  # a tie marks nothing
    assert "base: problems: missing column 'text' ×2" in md and "base: reused cached result" in md
    assert "base: error: model could not be loaded: boom" in md
    assert "| Insult | – | 0.5 (n=2) |" in md
    assert "| ppl: bits_per_byte ↓ | 2 | **1.875** |" in md  # the overview: mean over languages
    assert "| safety: violation_rate ↓ | – | 0.25 |" in md


def test_html_escapes_and_links_plots(tmp_path):
    page = html_report(RESULTS)
    assert "&lt;chat&gt;" in page and "<chat>" not in page
    assert "<td class=best>1.25" in page and "plots/ppl.png" in page
    path = write_reports(RESULTS, tmp_path)
    assert path.read_text(encoding="utf-8") == page
    for name in ("ppl", "safety"):
        assert (tmp_path / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
