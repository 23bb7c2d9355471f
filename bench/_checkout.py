"""Make a bench script measure the checkout it lives in, never another installed polyglot_llama.

Run as ``python bench/X.py``, a script's ``sys.path[0]`` is ``bench/``, so a plain ``import polyglot_llama``
finds whatever copy is installed (an editable install of another branch once forced a BOS and gave other
accuracies than lm-eval's on SmolLM2). Every bench script that uses the package starts with::

    from _checkout import use_checkout
    ROOT = use_checkout()
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def use_checkout() -> Path:
    """Put this checkout first on sys.path, import its polyglot_llama and print where it came from (on
    stdout, beside the numbers it produced). Returns the checkout's root folder."""
    sys.path.insert(0, str(ROOT))
    import polyglot_llama

    package = Path(polyglot_llama.__file__).resolve().parent
    if package != ROOT / "polyglot_llama":  # imported before this call, e.g. by a sitecustomize
        sys.exit(f"bench: polyglot_llama was imported from {package}, not this checkout {ROOT}; run the script "
                 f"with a plain `python bench/{Path(sys.argv[0]).name}`")
    if os.environ.get("RANK", "0") == "0":  # one line per run, not one per process under accelerate/torchrun
        print(f"polyglot_llama from {package}", flush=True)
    return ROOT


def real_text():
    """tests/real_text.py of this checkout (the real prose that registry packages ship, cached once), for benches
    that measure on it."""
    tests = str(ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    import real_text as module

    return module
