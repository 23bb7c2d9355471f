"""results.json → results.md (tables) and report.html (tables + PNG bar plots), checkpoints side by side.

Each task gets one table: a row per language, a column per checkpoint, the task's headline metric with
its 95 % interval and the example count; the best checkpoint per row is bold, and a * marks a checkpoint
that differs from the first one by a paired test at p < 0.05 (see stats.py). Breakdowns (safety categories, RM strength
buckets), problems (reason × count) and errors follow the table, so nothing a run skipped goes unseen.
"""

from __future__ import annotations

import html
from pathlib import Path

from ..io import write_text
from ..languages import language_name
from . import plots


def mean_primary(result: dict, metric: str) -> float | None:
    """Unweighted mean of the headline metric over languages (each language counts once)."""
    values = [m.get(metric) for m in result.get("languages", {}).values() if m.get(metric) is not None]
    return sum(values) / len(values) if values else None


def overview_rows(results: dict) -> list[tuple[str, list, object]]:
    """[(task label, [mean headline metric per checkpoint], best)]: the whole suite at a glance."""
    models = [m["name"] for m in results["models"]]
    rows = []
    for task in results["tasks"]:
        values = [mean_primary(task["results"].get(m, {}), task["primary"]) for m in models]
        arrow = "↑" if task["higher_is_better"] else "↓"
        rows.append((f"{task['name']}: {task['primary']} {arrow}", values, _best(values, task["higher_is_better"])))
    return rows


def markdown_table(headers: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(map(str, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def _best(values: list, higher_is_better: bool) -> object:
    present = [v for v in values if isinstance(v, (int, float))]
    if len(present) < 2 or len(set(present)) == 1:  # nothing to single out
        return None
    return max(present) if higher_is_better else min(present)


def task_rows(task: dict, models: list[str], section: str = "languages") -> list[tuple[str, list, object]]:
    """[(row key, [(value, n, 95 % interval, significant vs baseline) per model], best value)] for the
    languages or one breakdown of a task."""
    def table(result: dict) -> dict:
        return result.get(section, {}) if section == "languages" else result.get("breakdowns", {}).get(section, {})

    keys = sorted({k for m in models for k in table(task["results"].get(m, {}))})
    rows = []
    for key in keys:
        cells = [table(task["results"].get(m, {})).get(key, {}) for m in models]
        tests = task.get("comparisons", {}).get(key, {}) if section == "languages" else {}
        values = [(c.get(task["primary"]), c.get("n"), c.get("ci95"), tests.get(m, {}).get("significant", False))
                  for m, c in zip(models, cells)]
        rows.append((key, values, _best([v[0] for v in values], task["higher_is_better"])))
    return rows


def _ci(ci) -> str:
    return f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else ""


def agreement_notes(task: dict, models: list[str]) -> list[str]:
    """Safety tasks judged twice or more: how often each pair of judges agrees, per checkpoint and language."""
    notes = []
    for model in models:
        for lang, metrics in sorted(task["results"].get(model, {}).get("languages", {}).items()):
            for pair, a in metrics.get("judge_agreement", {}).items():
                kappa = f", κ {a['kappa']:.2f}" if a["kappa"] is not None else ""
                notes.append(f"{model}, {lang}: {pair}: agree on {a['agreement']:.0%}{kappa} (n={a['n']})")
    return notes


def preference_notes(task: dict, models: list[str]) -> list[str]:
    """Preference tasks: the implicit-reward margin and the KL to the reference behind each accuracy."""
    notes = []
    for model in models:
        for lang, metrics in sorted(task["results"].get(model, {}).get("languages", {}).items()):
            if "margin" in metrics:
                kl = f", KL to reference {metrics['kl_to_reference']:.4g} nats/token" if "kl_to_reference" in metrics else ""
                notes.append(f"{model}, {lang}: margin {metrics['margin']:.4g} (chosen {metrics['chosen_reward']:.4g}, "
                             f"rejected {metrics['rejected_reward']:.4g}){kl}")
    return notes


def comparison_notes(task: dict) -> list[str]:
    """One line per (language, checkpoint) paired test against the baseline, significant ones marked *."""
    notes = []
    for lang, tests in sorted(task.get("comparisons", {}).items()):
        for model, t in tests.items():
            mark = " *" if t["significant"] else ""
            notes.append(f"{lang}: {model} vs {t['baseline']}: p = {t['p_value']:.3g} ({t['test']}, n={t['n']}){mark}")
    return notes


def _row_label(key: str, section: str) -> str:
    return f"{key} ({language_name(key)})" if section == "languages" and language_name(key) != key else key


def _sections(task: dict, models: list[str]) -> list[str]:
    return ["languages"] + sorted({s for m in models for s in task["results"].get(m, {}).get("breakdowns", {})})


def markdown_report(results: dict) -> str:
    models = [m["name"] for m in results["models"]]
    lines = [f"# Evaluation: {results['suite']}", "", f"Created {results['created']}.", ""]
    lines += markdown_table(["checkpoint", "path", "fingerprint"],
                            [[m["name"], m["path"], m["fingerprint"] or f"error: {m['error']}"] for m in results["models"]])
    lines += ["", "## Overview (mean over languages)", ""]
    lines += markdown_table(["task"] + models, [[label] + [f"**{_fmt(v)}**" if v is not None and v == best else _fmt(v) for v in values]
                                               for label, values, best in overview_rows(results)])
    for task in results["tasks"]:
        direction = "higher is better" if task["higher_is_better"] else "lower is better"
        lines += ["", f"## {task['name']} ({task['kind']}): {task['primary']}, {direction}", ""]
        for section in _sections(task, models):
            if section != "languages":
                lines += ["", f"By {section}:", ""]
            rows = []
            for key, values, best in task_rows(task, models, section):
                cells = [_md_cell(v, n, best, ci, sig) for v, n, ci, sig in values]
                rows.append([_row_label(key, section)] + cells)
            lines += markdown_table(["language" if section == "languages" else section] + models, rows)
        tests = comparison_notes(task)
        if tests:
            lines += ["", "Paired tests against the first checkpoint (* = p < 0.05; the bracket is the 95 % interval):", ""]
            lines += [f"- {t}" for t in tests]
        judges = agreement_notes(task, models)
        if judges:
            lines += ["", "Agreement between safety judges (violation or not):", ""] + [f"- {j}" for j in judges]
        rewards = preference_notes(task, models)
        if rewards:
            lines += ["", "Implicit rewards β·log π/π_ref (mean over pairs):", ""] + [f"- {r}" for r in rewards]
        lines += _notes(task, models, markdown=True)
        lines += ["", f"![{task['name']}](plots/{task['name']}.png)"]
    return "\n".join(lines) + "\n"


def _md_cell(value, n, best, ci=None, significant=False) -> str:
    if value is None and n is None:
        return "–"
    text = f"**{_fmt(value)}**" if value is not None and value == best else _fmt(value)
    return f"{text}{'*' if significant else ''}{_ci(ci)} (n={_fmt(n)})"


def _notes(task: dict, models: list[str], markdown: bool) -> list[str]:
    notes = []
    for m in models:
        result = task["results"].get(m, {})
        if "error" in result:
            notes.append(f"{m}: error: {result['error']}")
        if result.get("problems"):
            notes.append(f"{m}: problems: " + "; ".join(f"{reason} ×{count}" for reason, count in result["problems"].items()))
        if result.get("cached"):
            notes.append(f"{m}: reused cached result")
    if not notes:
        return []
    return ([""] + [f"- {n}" for n in notes]) if markdown else notes


_CSS = """
body { font-family: -apple-system, "Segoe UI", "Noto Sans", "Noto Sans CJK KR", sans-serif; margin: 2rem auto;
       max-width: 1100px; color: #1d2430; padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2.2rem; border-bottom: 1px solid #dde; padding-bottom: .2rem; }
table { border-collapse: collapse; margin: .6rem 0; font-size: .9rem; }
th, td { border: 1px solid #d5d9e0; padding: .3rem .7rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f1f3f7; } td.best { font-weight: 700; background: #eaf6ea; }
.n, .ci { color: #7a8190; font-size: .8rem; } sup.sig { color: #b3261e; font-weight: 700; }
ul.tests { font-size: .85rem; color: #3b4250; } .meta { color: #5b6270; font-size: .85rem; }
ul.notes { color: #8a4b00; font-size: .85rem; } img { max-width: 100%; border: 1px solid #eee; margin-top: .4rem; }
"""


def html_report(results: dict) -> str:
    models = [m["name"] for m in results["models"]]
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Evaluation: {e(results['suite'])}</title>",
             f"<style>{_CSS}</style></head><body>", f"<h1>Evaluation: {e(results['suite'])}</h1>",
             f"<p class='meta'>Created {e(results['created'])} · suite {e(results['suite_file'])}</p>",
             "<table><tr><th>checkpoint</th><th>path</th><th>fingerprint</th></tr>"]
    for m in results["models"]:
        parts.append(f"<tr><td>{e(m['name'])}</td><td>{e(m['path'])}</td><td>{e(m['fingerprint'] or 'error: ' + str(m['error']))}</td></tr>")
    parts.append("</table><h2>Overview <span class='meta'>(mean over languages)</span></h2>")
    parts.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in ["task"] + models) + "</tr>")
    for label, values, best in overview_rows(results):
        cells = "".join(f"<td{' class=best' if v is not None and v == best else ''}>{e(_fmt(v))}</td>" for v in values)
        parts.append(f"<tr><td>{e(label)}</td>{cells}</tr>")
    parts.append("</table>")
    for task in results["tasks"]:
        direction = "higher is better" if task["higher_is_better"] else "lower is better"
        parts.append(f"<h2>{e(task['name'])} <span class='meta'>({e(task['kind'])}: {e(task['primary'])}, {direction})</span></h2>")
        for section in _sections(task, models):
            if section != "languages":
                parts.append(f"<p class='meta'>By {e(section)}</p>")
            header = "language" if section == "languages" else section
            parts.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in [header] + models) + "</tr>")
            for key, values, best in task_rows(task, models, section):
                cells = "".join(
                    f"<td{' class=best' if v is not None and v == best else ''}>{e(_fmt(v))}"
                    + ("<sup class='sig' title='differs from the baseline, p &lt; 0.05'>*</sup>" if sig else "")
                    + (f" <span class='ci'>{e(_ci(ci))}</span>" if ci else "")
                    + (f" <span class='n'>n={e(_fmt(n))}</span>" if n is not None else "") + "</td>"
                    for v, n, ci, sig in values)
                parts.append(f"<tr><td>{e(_row_label(key, section))}</td>{cells}</tr>")
            parts.append("</table>")
        tests = comparison_notes(task)
        if tests:
            parts.append("<p class='meta'>Paired tests against the first checkpoint (* = p &lt; 0.05; brackets: 95 % intervals)</p>"
                         "<ul class='tests'>" + "".join(f"<li>{e(t)}</li>" for t in tests) + "</ul>")
        judges = agreement_notes(task, models)
        if judges:
            parts.append("<p class='meta'>Agreement between safety judges (violation or not)</p>"
                         "<ul class='tests'>" + "".join(f"<li>{e(j)}</li>" for j in judges) + "</ul>")
        rewards = preference_notes(task, models)
        if rewards:
            parts.append("<p class='meta'>Implicit rewards β·log π/π_ref (mean over pairs)</p>"
                         "<ul class='tests'>" + "".join(f"<li>{e(r)}</li>" for r in rewards) + "</ul>")
        notes = _notes(task, models, markdown=False)
        if notes:
            parts.append("<ul class='notes'>" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>")
        parts.append(f"<img src='plots/{e(task['name'])}.png' alt='{e(task['name'])}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_reports(results: dict, output: Path) -> Path:
    """Write results.md, report.html and one bar plot per task; returns the HTML path."""
    models = [m["name"] for m in results["models"]]
    for task in results["tasks"]:
        languages = {m: task["results"].get(m, {}).get("languages", {}) for m in models}
        series = {m: {lang: metrics.get(task["primary"]) for lang, metrics in languages[m].items()} for m in models}
        intervals = {m: {lang: metrics["ci95"] for lang, metrics in languages[m].items() if metrics.get("ci95")} for m in models}
        direction = "↑" if task["higher_is_better"] else "↓"
        plots.grouped_bars(series, output / "plots" / f"{task['name']}.png",
                           f"{task['name']}: {task['primary']} {direction} (bars: 95 % intervals)"
                           if any(intervals.values()) else f"{task['name']}: {task['primary']} {direction}",
                           ylabel=task["primary"], intervals=intervals)
    write_text(output / "results.md", markdown_report(results))
    write_text(output / "report.html", html_report(results))
    return output / "report.html"
