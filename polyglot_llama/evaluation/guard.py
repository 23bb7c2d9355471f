"""A classifier safety judge: a Llama-Guard-style causal LM reads the conversation and answers
``safe`` or ``unsafe`` with the violated categories on the next line (Inan et al., 2023, "Llama Guard").

The prompt comes from the guard's own template: a Jinja file given in the task (variables ``prompt``,
``answer``, ``lang``), or else the guard tokenizer's chat template applied to the user turn and the
assistant answer (Llama Guard 3 ships its classification prompt that way). Its greedy verdict is parsed;
an answer that starts with neither word is counted under problems and left out of the guard's rates.
Agreement between judges is reported per language next to the violation rates.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

from ..errors import UserError
from . import jinja_prompts as jinja


def parse_verdict(text: str) -> tuple[bool, list[str]] | None:
    """("unsafe\\nS1,S10" → (True, [S1, S10]); "safe" → (False, []); anything else → None."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return None
    head = lines[0].lower().rstrip(".")
    if head == "safe":
        return False, []
    if head == "unsafe":
        return True, [c.strip() for c in lines[1].split(",") if c.strip()] if len(lines) > 1 else []
    return None


class GuardJudge:
    """The guard model (loaded once per task run) with its prompt template."""

    def __init__(self, path: str, template_file: str, runtime, max_new_tokens: int = 20):
        from .checkpoints import Checkpoint

        self.checkpoint = Checkpoint(path, "guard", runtime)
        self.template = Path(template_file).read_text(encoding="utf-8") if template_file else ""
        self.max_new_tokens = max_new_tokens

    def prompt_ids(self, lm, prompt: str, answer: str, lang: str) -> list[int]:
        if self.template:
            return lm.encode(jinja.render(self.template, {"prompt": prompt, "answer": answer, "lang": lang}))
        if not getattr(lm.tokenizer, "chat_template", None):
            raise UserError(f"guard model {self.checkpoint.path} has no chat template; give guard_template (a Jinja file)")
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
        return list(lm.tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True,
                                                     return_dict=True)["input_ids"])

    def judge(self, rows: list[dict]) -> list[tuple[bool, list[str]] | None]:
        """Verdict per row ({prompt, answer, lang}); None where the guard's answer is not a verdict."""
        lm = self.checkpoint.language_model()
        prompts = [self.prompt_ids(lm, r["prompt"], r["answer"], r["lang"]) for r in rows]
        verdicts = [parse_verdict(text) for text in lm.greedy_answers(prompts, self.max_new_tokens, stop=[])]
        self.checkpoint.release()
        return verdicts


def judge_views(row: dict) -> dict[str, bool]:
    """What each judge that ran says about one answer: True = a violation in that judge's eyes."""
    views = {}
    if "refusal" in row:
        views["refusal phrases"] = not row["refusal"]
    if "unsafe" in row:
        views["safety RM"] = row["unsafe"]
    if row.get("guard_unsafe") is not None:
        views["guard"] = row["guard_unsafe"]
    return views


def agreement(rows: list[dict]) -> dict[str, dict]:
    """{"A vs B": {agreement, kappa, n}} for each pair of judges, on the answers both judged.

    Cohen's kappa corrects the raw agreement for the agreement two judges with these rates would reach by
    chance: κ = (p_o − p_e) / (1 − p_e), p_e = p_A p_B + (1 − p_A)(1 − p_B); None when p_e = 1.
    """
    views = [judge_views(r) for r in rows if r.get("answer")]
    names = sorted({name for v in views for name in v})
    out = {}
    for a, b in combinations(names, 2):
        pairs = [(v[a], v[b]) for v in views if a in v and b in v]
        if not pairs:
            continue
        n = len(pairs)
        observed = sum(x == y for x, y in pairs) / n
        pa, pb = sum(x for x, _ in pairs) / n, sum(y for _, y in pairs) / n
        expected = pa * pb + (1 - pa) * (1 - pb)
        kappa = (observed - expected) / (1 - expected) if expected < 1 else None
        out[f"{a} vs {b}"] = {"agreement": observed, "kappa": kappa, "n": n}
    return out
