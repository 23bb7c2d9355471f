"""runlog: a CLI run silences datasets' and transformers' progress bars and routes transformers' logging,
and `close` puts every one of those settings back (a program calling `cli.main` keeps its own)."""

import logging
import subprocess
import sys
from pathlib import Path

from polyglot_llama import runlog

ROOT = Path(__file__).resolve().parents[2]


def _library_settings() -> dict:
    import datasets
    import huggingface_hub.utils as hub_utils
    from transformers.utils import logging as hf_logging

    library = logging.getLogger("transformers")
    return {"datasets_bars_off": datasets.are_progress_bars_disabled(), "transformers_bars_on": hf_logging.is_progress_bar_enabled(),
            "hub_bars_off": hub_utils.are_progress_bars_disabled(), "level": library.level,
            "handlers": list(library.handlers), "propagate": library.propagate}


def test_close_restores_the_settings_of_already_imported_libraries(tmp_path):
    before = _library_settings()
    assert before["datasets_bars_off"] is False and before["transformers_bars_on"] is True  # the libraries' defaults
    runlog.setup("pretrain", str(tmp_path), verbose=False)
    try:
        during = _library_settings()
    finally:
        runlog.close()
    assert during["datasets_bars_off"] is True and during["transformers_bars_on"] is False and during["hub_bars_off"] is True
    assert during["level"] == logging.INFO and during["handlers"] == [] and during["propagate"] is True
    assert _library_settings() == before


def test_a_library_imported_during_the_run_is_silenced_then_restored(tmp_path):
    # datasets is imported lazily by the data code, after setup: only a fresh process shows that path.
    probe = (
        "import sys; from polyglot_llama import runlog\n"
        f"runlog.setup('pretrain', {str(tmp_path)!r}, verbose=False)\n"
        "assert 'datasets' not in sys.modules\n"
        "import datasets\n"
        "print(datasets.are_progress_bars_disabled())\n"
        "runlog.close()\n"
        "print(datasets.are_progress_bars_disabled(), all(type(f).__name__ != '_AfterImport' for f in sys.meta_path))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "False", "True"]


def test_another_rank_logs_to_its_own_file(tmp_path, monkeypatch):
    assert runlog.log_file_for("reward eval", str(tmp_path)) == tmp_path / "reward_eval.log"
    monkeypatch.setenv("RANK", "1")
    assert runlog.log_file_for("reward eval", str(tmp_path)) == tmp_path / "reward_eval.rank1.log"
