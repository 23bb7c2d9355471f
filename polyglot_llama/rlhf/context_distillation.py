"""`polyglot-llama context-distill`: safety context distillation (Llama 2 §4.2.4).

For each adversarial prompt, the policy answers twice: as it is, and with a safety preprompt ("You are a
safe and responsible assistant…", optionally followed by the answer template of the prompt's risk
category) as the system message. The reward (the safety RM) scores both answers *against the prompt
without the preprompt*; the distilled answer is kept only where it scores higher (by ``margin``), and the
policy is fine-tuned with the SFT stage on (prompt without preprompt → kept answer). Preprompts and
templates are multilingual data files (``resources/safety/``); a language without an entry uses English.

Outputs: ``distilled.jsonl`` (every prompt with both answers and scores), ``train.jsonl`` (kept pairs),
``report.json`` (per language: prompts, kept share, mean scores) and ``model/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch

from ..config import write_resolved_config
from ..errors import UserError
from ..io import read_json, write_json, write_jsonl
from ..runtime import frozen_dtype, pick_device
from .generation import SamplingConfig, derive_seed, generate
from .prompts import Prompt, by_language, encode_prompts, load_prompts, write_rejects
from .rewards import RewardConfig, RewardScorer
from .runtime import finetune, load_policy, sft_config


def _resource(name: str) -> str:
    return str(resources.files("polyglot_llama") / "resources" / "safety" / name)


@dataclass
class ContextDistillationConfig:
    model: str = ""
    """Policy checkpoint to distil into."""
    tokenizer: str = ""
    """Tokenizer directory (default: the model directory)."""
    output: str = ""
    """Output directory: answers, training pairs, report and the fine-tuned model (output/model)."""
    prompts: list[str] = field(default_factory=list)
    """Adversarial prompt files (JSONL/Parquet) with optional 'lang', 'id' and 'category' (risk category)."""
    default_lang: str = "en"
    """Language of prompt records without a 'lang' field."""
    preprompts: str = ""
    """JSON file {lang: preprompt} (default: the bundled resources/safety/preprompts.json)."""
    answer_templates: str = ""
    """JSON file {category: {lang: template}} (default: resources/safety/answer_templates.json); '' with use_templates false: none."""
    use_templates: bool = True
    """Append the answer template of the prompt's 'category' to the preprompt."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    """Judge of the answers: Llama 2 uses the safety RM (reward.safety_model)."""
    margin: float = 0.0
    """Keep the distilled answer only where its score exceeds the original answer's by more than this."""
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(temperature=0.7, top_p=0.9, max_new_tokens=512))
    max_prompt_tokens: int = 1024
    """Prompts longer than this (with the preprompt) are skipped and counted."""
    seed: int = 0
    """Seeds both answers of every prompt."""
    finetune: bool = True
    """Fine-tune on the kept pairs (false: only generate, score and report)."""
    sft: dict = field(default_factory=dict)
    """Overrides of the SFT stage's config for the fine-tune, e.g. {optim: {lr: 1e-5}, loop: {epochs: 1}}."""

    def __post_init__(self):
        for key in ("model", "output"):
            if not getattr(self, key):
                raise UserError(f"key '{key}' is required")
        if not self.prompts:
            raise UserError("key 'prompts' is empty; give JSONL/Parquet files of adversarial prompts")


def load_preprompts(path: str) -> dict[str, str]:
    data = read_json(path or _resource("preprompts.json"))
    table = {k: v for k, v in data.items() if not k.startswith("_")}
    if "en" not in table or not all(isinstance(v, str) for v in table.values()):
        raise UserError(f"{path or 'preprompts.json'}: expected {{lang: preprompt string}} with an 'en' entry")
    return table


def load_templates(path: str) -> dict[str, dict[str, str]]:
    data = read_json(path or _resource("answer_templates.json"))
    table = {k: v for k, v in data.items() if not k.startswith("_")}
    if not all(isinstance(v, dict) and isinstance(v.get("en"), str) for v in table.values()):
        raise UserError(f"{path or 'answer_templates.json'}: expected {{category: {{lang: template}}}} with 'en' in every category")
    return table


def with_preprompt(prompt: Prompt, preprompts: dict[str, str], templates: dict[str, dict[str, str]]) -> list[dict]:
    """The prompt's messages with the safety preprompt (+ its category's template) as the system message."""
    context = preprompts.get(prompt.lang, preprompts["en"])
    template = templates.get(prompt.category)
    if template:
        context += "\n\n" + template.get(prompt.lang, template["en"])
    messages = [dict(m) for m in prompt.messages]
    if messages[0]["role"] == "system":
        messages[0]["content"] = context + "\n\n" + messages[0]["content"]
    else:
        messages.insert(0, {"role": "system", "content": context})
    return messages


def run(cfg: ContextDistillationConfig) -> dict:
    output = Path(cfg.output)
    output.mkdir(parents=True, exist_ok=True)
    write_resolved_config(cfg, output, "context-distill")
    preprompts = load_preprompts(cfg.preprompts)
    templates = load_templates(cfg.answer_templates) if cfg.use_templates else {}
    prompts, rejects = load_prompts(cfg.prompts, cfg.default_lang)
    device = pick_device()  # sampling only: bf16 where the GPU supports it, fp32 elsewhere
    model, tokenizer = load_policy(cfg.model, cfg.tokenizer, device, dtype=frozen_dtype(device))
    distilled_prompts = [Prompt(p.id, p.lang, with_preprompt(p, preprompts, templates), p.is_safety, p.category) for p in prompts]
    distilled_prompts = encode_prompts(distilled_prompts, tokenizer, cfg.max_prompt_tokens, rejects)
    kept_ids = {p.id for p in distilled_prompts}
    prompts = encode_prompts([p for p in prompts if p.id in kept_ids], tokenizer, cfg.max_prompt_tokens, rejects)
    write_rejects(rejects, output)
    scorer = RewardScorer(cfg.reward, tokenizer, device=next(model.parameters()).device)

    original = generate(model, tokenizer, [p.ids for p in prompts], cfg.sampling,
                        [derive_seed(cfg.seed, "original", p.id) for p in prompts], model_path=cfg.model)
    distilled = generate(model, tokenizer, [p.ids for p in distilled_prompts], cfg.sampling,
                         [derive_seed(cfg.seed, "distilled", p.id) for p in prompts], model_path=cfg.model)
    del model
    # Both answers are judged against the prompt *without* the preprompt: that is the context trained on.
    original_scores = scorer(prompts, [g.text for g in original], [g.finished for g in original])
    distilled_scores = scorer(prompts, [g.text for g in distilled], [g.finished for g in distilled])
    keep = (distilled_scores > original_scores + cfg.margin) & torch.tensor([bool(g.text) for g in distilled])
    reward_info = scorer.info
    del scorer  # free the reward model's memory before fine-tuning

    write_jsonl(output / "distilled.jsonl", (
        {"id": p.id, "lang": p.lang, "category": p.category, "original": o.text, "distilled": d.text,
         "original_score": float(so), "distilled_score": float(sd), "kept": bool(k)}
        for p, o, d, so, sd, k in zip(prompts, original, distilled, original_scores, distilled_scores, keep)))
    train_file = output / "train.jsonl"
    n_kept = write_jsonl(train_file, (
        {"id": p.id, "lang": p.lang, "messages": p.messages + [{"role": "assistant", "content": d.text}]}
        for p, d, k in zip(prompts, distilled, keep) if k))
    report = {
        "prompts": len(prompts), "kept": n_kept, "rejected_prompts": rejects.count, "reward_info": reward_info,
        "languages": {lang: {"prompts": len(idx), "kept_share": float(keep[idx].float().mean()),
                             "mean_original_score": float(original_scores[idx].mean()),
                             "mean_distilled_score": float(distilled_scores[idx].mean()),
                             "preprompt": "own" if lang in preprompts else "en"}
                      for lang, idx in by_language(prompts).items()},
    }
    if cfg.finetune:
        if n_kept == 0:
            raise UserError("no distilled answer scored higher than the original; nothing to fine-tune on "
                            f"(see {output / 'distilled.jsonl'}); lower 'margin' or set finetune: false")
        summary = finetune(sft_config(cfg.model, cfg.tokenizer or cfg.model, train_file, output / "model", cfg.sft,
                                      where="sft"))
        report["sft"] = {k: summary[k] for k in ("steps", "train_loss", "rows") if k in summary}
        report["model"] = str(output / "model")
    write_json(output / "report.json", report)
    return report
