"""95 % intervals for every headline number and paired tests between checkpoints, added to results.json.

A task may put ``outcomes`` in a language's metrics: one value per example, in the data's order, the same
for every checkpoint (None where an example has no score, e.g. an empty answer). Then:

* the interval of a proportion (0/1 outcomes: accuracy, exact match, violation) is Wilson's score
  interval, which stays inside [0, 1] and is honest at small n, where the normal one is not;
  a mean of other values (chrF per sentence, a score) gets a percentile bootstrap interval;
* each checkpoint after the first is compared with the first (the baseline) on the examples both scored:
  McNemar's exact test for 0/1 outcomes (only the discordant pairs carry information), a paired
  bootstrap of the mean difference otherwise. p < 0.05 marks the difference as significant.

Without outcomes (lm-evaluation-harness rows), a proportion metric still gets its Wilson interval from
the value and n; there is then no paired test. A task may also give its own ``ci95`` (perplexity: bits per
byte, bootstrapped over documents), which is kept.
"""

from __future__ import annotations

import math
import random

Z95 = 1.959963984540054
ALPHA = 0.05
BOOTSTRAP_SAMPLES = 2000
PROPORTIONS = {"accuracy", "accuracy_norm", "acc", "acc_norm", "exact_match", "violation_rate", "refusal_rate",
               "unsafe_rate", "agreement"}


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for successes/n (Wilson 1927)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denominator = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, center - half), min(1.0, center + half))


def bootstrap_interval(values: list[float], samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap 95 % interval of the mean (fixed seed: the report is reproducible)."""
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(samples))
    return (means[int(0.025 * samples)], means[int(0.975 * samples) - 1])


def bootstrap_ratio_interval(numerators: list[float], denominators: list[float], samples: int = BOOTSTRAP_SAMPLES,
                             seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap 95 % interval of Σ numerators / Σ denominators, resampling whole items (documents:
    bits per byte is total NLL over total bytes, not a mean of per-document values)."""
    rng = random.Random(seed)
    pairs = list(zip(numerators, denominators))
    ratios = []
    for _ in range(samples):
        drawn = rng.choices(pairs, k=len(pairs))
        ratios.append(sum(n for n, _ in drawn) / sum(d for _, d in drawn))
    ratios.sort()
    return (ratios[int(0.025 * samples)], ratios[int(0.975 * samples) - 1])


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts b (only A right) and c (only B right)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired_bootstrap(a: list[float], b: list[float], samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> float:
    """Two-sided p-value that mean(b - a) differs from 0, by resampling the paired differences."""
    diffs = [y - x for x, y in zip(a, b)]
    if not any(diffs):
        return 1.0
    rng = random.Random(seed)
    n = len(diffs)
    means = [sum(rng.choices(diffs, k=n)) / n for _ in range(samples)]
    below = sum(m <= 0 for m in means) / samples
    above = sum(m >= 0 for m in means) / samples
    return min(1.0, 2 * min(below, above))


def _binary(values: list) -> bool:
    return all(v in (0, 1, True, False) for v in values)


def interval(metrics: dict, metric: str) -> tuple[list[float], str] | None:
    """([low, high], method) of a language's headline metric, or None when it cannot have one."""
    outcomes = [v for v in metrics.get("outcomes") or [] if v is not None]
    if outcomes:
        if _binary(outcomes):
            return list(wilson_interval(sum(map(int, outcomes)), len(outcomes))), "wilson"
        return list(bootstrap_interval([float(v) for v in outcomes])), "bootstrap"
    value, n = metrics.get(metric), metrics.get("n")
    if metric in PROPORTIONS and isinstance(value, (int, float)) and isinstance(n, int) and n > 0 and 0 <= value <= 1:
        return list(wilson_interval(round(value * n), n)), "wilson"
    return None


def paired_test(base: list, other: list) -> dict | None:
    """{test, p_value, n, significant} on the examples both checkpoints scored; None when not comparable."""
    if len(base) != len(other):  # different data (a changed file, another limit): not paired
        return None
    pairs = [(x, y) for x, y in zip(base, other) if x is not None and y is not None]
    if not pairs:
        return None
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    if _binary(xs + ys):
        b = sum(1 for x, y in pairs if x and not y)
        c = sum(1 for x, y in pairs if y and not x)
        test, p = "mcnemar_exact", mcnemar_exact(b, c)
    else:
        test, p = "paired_bootstrap", paired_bootstrap([float(x) for x in xs], [float(y) for y in ys])
    return {"test": test, "p_value": p, "n": len(pairs), "significant": p < ALPHA}


def add_uncertainty(results: dict) -> None:
    """Add ``ci95``/``ci_method`` to every language's metrics and ``comparisons`` to every task, in place."""
    models = [m["name"] for m in results["models"]]
    for task in results["tasks"]:
        metric = task["primary"]
        for model in models:
            for metrics in task["results"].get(model, {}).get("languages", {}).values():
                found = interval(metrics, metric)
                if found:
                    metrics["ci95"], metrics["ci_method"] = found
        comparisons: dict[str, dict] = {}
        base = task["results"].get(models[0], {}).get("languages", {}) if models else {}
        for model in models[1:]:
            for lang, metrics in task["results"].get(model, {}).get("languages", {}).items():
                if "outcomes" in metrics and "outcomes" in base.get(lang, {}):
                    test = paired_test(base[lang]["outcomes"], metrics["outcomes"])
                    if test:
                        comparisons.setdefault(lang, {})[model] = {"baseline": models[0], **test}
        task["comparisons"] = comparisons
