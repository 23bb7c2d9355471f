import subprocess
import sys

from polyglot_llama.cli import STAGES, main


def test_top_help_lists_every_stage(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in STAGES:
        assert name in out


def test_stage_help_shows_field_docs():
    result = subprocess.run([sys.executable, "-m", "polyglot_llama.cli", "model", "init", "--help"],
                            capture_output=True, text=True, check=True)
    assert "--preset" in result.stdout and "Model shape" in result.stdout and "--set" in result.stdout


def test_user_error_is_one_line_with_exit_2(tmp_path, capsys):
    code = main(["model", "init", "--tokenizer", str(tmp_path / "missing"), "--output", str(tmp_path / "m")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("polyglot-llama model init: error:") and "tokenizer.json" in err[-1]
    assert not any("Traceback" in line for line in err)


def test_unknown_config_key_from_command_line(tmp_path, capsys):
    assert main(["model", "init", "--set", "bogus=1"]) == 2
    assert "unknown key 'bogus'" in capsys.readouterr().err
