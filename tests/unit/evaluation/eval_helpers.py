"""Hand computations and scripted stand-ins shared by the evaluation tests."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from polyglot_llama.evaluation.lm import Runtime


def token_logprobs(model, ids: list[int]) -> list[float]:
    """Hand computation: log p(ids[t] | ids[:t]) for t = 1..len-1, one unpadded forward in float64."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
    logprobs = torch.log_softmax(logits, dim=-1)
    return [logprobs[t - 1, ids[t]].item() for t in range(1, len(ids))]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


class ScriptedLM:
    """Stands in for LanguageModel where a test fixes the answers (the scoring, not the model, is under test)."""

    def __init__(self, answers: dict[str, str], tokenizer=None):
        self.answers = answers
        self.tokenizer = tokenizer
        self.prompts: list[str] = []

    def encode(self, text: str, bos: bool = True) -> list[int]:
        self.prompts.append(text)
        return [len(self.prompts) - 1]  # an id that maps back to the prompt

    def greedy_answers(self, prompts, max_new_tokens, stop):
        return [next((a for key, a in self.answers.items() if key in self.prompts[ids[0]]), "") for ids in prompts]


class ScriptedCheckpoint:
    def __init__(self, lm, runtime: Runtime | None = None):
        self.lm = lm
        self.runtime = runtime or Runtime(device="cpu", dtype="float32", batch_size=4)

    def language_model(self):
        return self.lm

    def release(self):
        pass
