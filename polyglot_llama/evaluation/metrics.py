"""Generation metrics as `evaluate` modules shipped in the repository (eval/metrics/<name>/<name>.py).

`evaluate.load("chrf")` would fetch the module from the Hub, which offline machines cannot reach;
`evaluate.load(path)` of a local script works anywhere. A metric is named (``exact_match``, ``chrf``:
looked up in the repository's eval/metrics) or given as a path to a module directory or script.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from ..errors import UserError

BUNDLED_METRICS = Path(__file__).resolve().parents[2] / "eval" / "metrics"


def resolve_metric(spec: str, base_dir: Path | None = None) -> Path:
    candidates = [BUNDLED_METRICS / spec] if "/" not in spec and not spec.endswith(".py") else []
    candidates.append(Path(spec) if Path(spec).is_absolute() or base_dir is None else base_dir / spec)
    for path in candidates:
        if path.exists():
            return path.resolve()
    raise UserError(f"metric {spec!r} not found (looked in {', '.join(map(str, candidates))}); "
                    "name a bundled metric (exact_match, chrf) or give the path of an evaluate module")


@lru_cache(maxsize=None)
def load_metric(path: str):
    import evaluate

    return evaluate.load(path)


def compute_metric(path: str, predictions: list[str], references: list[list[str]]) -> dict[str, float]:
    """The metric's result dict, e.g. {"chrf": 57.2}; an empty prediction list gives the module's empty value."""
    return {k: float(v) for k, v in load_metric(path).compute(predictions=predictions, references=references).items()}
