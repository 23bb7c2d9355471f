"""Per-language evaluation: `polyglot-llama eval` (suite.py) and `polyglot-llama reward eval` (reward_eval.py).

suite.py runs tasks (one module per kind: perplexity, multiple_choice, generation, reward_task, safety,
harness; the table is in tasks.py) on checkpoints (checkpoints.py, lm.py) with a result cache, and
report.py/plots.py write the Markdown and HTML reports. Named ``evaluation`` because ``eval`` is a builtin.
"""
