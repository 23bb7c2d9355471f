"""Collecting preferences in a new language: Llama 2's comparison protocol as a local web app.

`prepare` samples answer pairs, `import` loads pairs made elsewhere, `add-annotator` creates logins,
`serve` runs the app (compare, rate strength, label safety, write prompts, continue dialogues, admin view),
`export` writes the preference JSONL that `reward` and `dpo` train on.
"""
