"""Every bench script measures the checkout it lives in, not another installed polyglot_llama, and says so.

Run as a script, its sys.path[0] is bench/, so a plain `import polyglot_llama` found the editable install of
another branch, whose multiple choice forced a BOS: on SmolLM2 its accuracies differed from lm-eval's in all
five languages of the short task while this checkout's equal them. bench/_checkout.py puts the checkout
first and prints the package path; each script runs it before anything else imports the package.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p for p in (ROOT / "bench").glob("*.py") if not p.name.startswith("_"))


def imports_package(script: Path) -> bool:
    for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        if any(name.split(".")[0] == "polyglot_llama" for name in names):
            return True
    return False


def test_only_the_screenshot_script_does_without_the_package():
    assert [p.name for p in SCRIPTS if not imports_package(p)] == ["screenshot_report.py"]


@pytest.mark.parametrize("script", [p.name for p in SCRIPTS if imports_package(p)])
def test_bench_script_imports_and_prints_its_checkout(tmp_path, script):
    decoy = tmp_path / "polyglot_llama"  # stands for another version installed in the environment
    decoy.mkdir()
    (decoy / "__init__.py").write_text("")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path), "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--help"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[0] == f"polyglot_llama from {ROOT / 'polyglot_llama'}"
