"""The eval benchmarks (bench/bench_eval_*.py) measure the checkout it lives in, not another installed polyglot_llama.

Run as a script, its sys.path[0] is bench/, so a plain `import polyglot_llama` found the editable install of
another branch, whose multiple choice forced a BOS: on SmolLM2 its accuracies differed from lm-eval's in all
five languages of the short task while this checkout's equal them.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("script", ["bench_eval_vs_lm_eval.py", "bench_eval_loglikelihood.py"])
def test_bench_imports_the_checkout_before_an_installed_copy(tmp_path, script):
    decoy = tmp_path / "polyglot_llama"  # stands for another version installed in the environment
    decoy.mkdir()
    (decoy / "__init__.py").write_text("")
    probe = (f"import runpy; runpy.run_path({str(ROOT / 'bench' / script)!r}, run_name='probe'); "
             "import polyglot_llama; print(polyglot_llama.__file__)")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path), "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()) == ROOT / "polyglot_llama" / "__init__.py"
