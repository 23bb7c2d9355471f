"""`polyglot-llama pretrain`: (continued) pretraining on packed sequences, with a freezing schedule.

From scratch: `model init` writes the starting checkpoint. Continued pretraining: start from any Llama
checkpoint (optionally extended by `model extend`), give a mixture from `corpus mix`, and list stages,
e.g. new embedding rows first, then everything. The output directory is a Hugging Face model directory
plus ``stages/`` (resumable checkpoints), ``perplexity.json`` and ``forgetting.md`` (per-language
validation perplexity before and after: forgetting of English shows here).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..config import to_dict, write_resolved_config
from ..errors import UserError
from ..io import read_json, write_json, write_text
from ..model.checkpoint import check_vocab_matches, load_causal_lm, load_tokenizer, read_model_config
from .data import build_packed_dataset, causal_lm_step, collate_packed, split_by_language
from .freezing import TrainStageConfig, prepare_stage
from .loop import LoopConfig, OptimConfig, ScheduleConfig, distributed_state, save_final, train

log = logging.getLogger(__name__)


@dataclass
class PretrainDataConfig:
    train: list[str] = field(default_factory=list)
    """Training corpora: globs of JSONL(.gz/.zst) / Parquet / plain-text files with a text and optional lang field."""
    validation: list[str] = field(default_factory=list)
    """Held-out corpora for per-language validation; empty: hold out validation_fraction of the packed rows."""
    validation_fraction: float = 0.05
    """Share of packed rows per language held out for validation when no validation files are given."""
    text_field: str = "text"
    """Name of the text field."""
    lang_field: str = "lang"
    """Name of the language field (records without it get default_lang)."""
    default_lang: str = "en"
    """Language of records without a language field."""
    seq_len: int = 4096
    """Packed sequence length in tokens (Llama 2: 4096); at most the model's max_position_embeddings."""
    document_masking: bool = True
    """Restart positions at each document so attention does not cross documents inside a packed row."""
    end_of_text: str = ""
    """Token that ends each document; '' = the tokenizer's eos unless it closes chat turns (then <|endoftext|>, <|end_of_text|>, </s> or <eos>). A BOS starts a document only if the tokenizer adds one."""
    cache_dir: str = ""
    """Where tokenised datasets are cached as Arrow (default: OUTPUT/cache)."""
    num_proc: int = 1
    """Processes for tokenisation of large corpora."""

    def __post_init__(self):
        if not self.train:
            raise UserError("key 'data.train' is required: globs of the training corpora")
        if not 0 <= self.validation_fraction < 1:
            raise UserError(f"key 'data.validation_fraction' is {self.validation_fraction}; it must be in [0, 1)")
        if self.seq_len < 8:
            raise UserError(f"key 'data.seq_len' is {self.seq_len}; use at least 8 (Llama 2: 4096)")


@dataclass
class PretrainConfig:
    model: str = ""
    """Starting checkpoint: a Hugging Face Llama directory (from `model init`, `model extend` or Llama 2 itself)."""
    output: str = ""
    """Output directory: the trained model (HF format), stages/ checkpoints, logs, perplexity report."""
    tokenizer: str = ""
    """Tokenizer directory (default: the model directory)."""
    data: PretrainDataConfig = field(default_factory=PretrainDataConfig)
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(micro_batch_size=8, grad_accum=16))
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    stages: list[TrainStageConfig] = field(default_factory=list)
    """Freezing schedule, run in order, e.g. [{name: new-rows, trainable: new_embeddings, steps: 500, lr: 1e-3}, {name: full, steps: 2000}]; empty = one stage training everything."""
    new_tokens_file: str = ""
    """new_tokens.json from `model extend` (default: MODEL/new_tokens.json when present)."""

    def __post_init__(self):
        if not self.model:
            raise UserError("key 'model' is required: a Llama checkpoint directory (create one with `polyglot-llama model init`)")
        if not self.output:
            raise UserError("key 'output' is required: the directory to write the trained model to")


def _holdout(dataset, fraction: float, seed: int):
    """Split a packed dataset into (train, {lang: validation}) holding out ``fraction`` of each language's rows."""
    if fraction == 0:
        return dataset, {}
    train_parts, validation = [], {}
    import datasets

    for lang, subset in split_by_language(dataset).items():
        n_val = max(1, round(len(subset) * fraction)) if len(subset) > 1 else 0
        shuffled = subset.shuffle(seed=seed)
        validation[lang] = shuffled.select(range(n_val)) if n_val else None
        train_parts.append(shuffled.select(range(n_val, len(subset))))
    return datasets.concatenate_datasets(train_parts), {k: v for k, v in validation.items() if v is not None}


def _new_tokens_record(cfg: PretrainConfig) -> dict | None:
    """The `model extend` record of which token ids are new, if the starting model has one."""
    path = Path(cfg.new_tokens_file) if cfg.new_tokens_file else Path(cfg.model) / "new_tokens.json"
    if not path.is_file():
        if cfg.new_tokens_file:
            raise UserError(f"key 'new_tokens_file': {path} not found")
        return None
    record = read_json(path)
    if not isinstance(record.get("new_token_ids"), list):
        raise UserError(f"{path}: missing list 'new_token_ids'; regenerate it with `polyglot-llama model extend`")
    return record


def perplexity_report(before: dict, after: dict) -> str:
    lines = ["| language | perplexity before | perplexity after | change |", "|---|---:|---:|---:|"]
    for lang in sorted(set(before) | set(after)):
        b, a = before.get(lang, {}).get("perplexity"), after.get(lang, {}).get("perplexity")
        change = f"{(a / b - 1) * 100:+.1f} %" if a and b else "n/a"
        lines.append(f"| {lang} | {b:.2f} | {a:.2f} | {change} |" if a and b else f"| {lang} | {b} | {a} | n/a |")
    return "\n".join(lines) + "\n"


def run(cfg: PretrainConfig) -> dict:
    output = Path(cfg.output)
    tokenizer_dir = cfg.tokenizer or cfg.model
    model_config = read_model_config(cfg.model)
    max_positions = model_config.get("max_position_embeddings", 0)
    if cfg.data.seq_len > max_positions:
        raise UserError(f"key 'data.seq_len' is {cfg.data.seq_len} but {cfg.model} supports at most {max_positions} positions; lower data.seq_len")
    tokenizer = load_tokenizer(tokenizer_dir)
    model = load_causal_lm(cfg.model)
    check_vocab_matches(model, tokenizer, cfg.model, tokenizer_dir)
    output.mkdir(parents=True, exist_ok=True)
    write_resolved_config(cfg, output, "pretrain")

    cache = cfg.data.cache_dir or str(output / "cache")
    pack = dict(text_field=cfg.data.text_field, lang_field=cfg.data.lang_field, default_lang=cfg.data.default_lang,
                document_masking=cfg.data.document_masking, end_of_text=cfg.data.end_of_text, cache_dir=cache, num_proc=cfg.data.num_proc)
    # The main process tokenises and fills the cache; the other ranks then read it.
    with distributed_state().main_process_first():
        dataset = build_packed_dataset(cfg.data.train, tokenizer, cfg.data.seq_len, rejects_file=output / "rejected_records.jsonl", **pack)
        validation = build_packed_dataset(cfg.data.validation, tokenizer, cfg.data.seq_len, **pack) if cfg.data.validation else None
    if validation is not None:
        train_set, eval_sets = dataset, split_by_language(validation)
    else:
        train_set, eval_sets = _holdout(dataset, cfg.data.validation_fraction, cfg.loop.seed)
    log.info("pretrain: %d training rows of %d tokens; validation rows %s", len(train_set), cfg.data.seq_len,
             {lang: len(ds) for lang, ds in eval_sets.items()})

    stages = cfg.stages or [TrainStageConfig()]
    new_tokens = _new_tokens_record(cfg)
    new_ids = [int(i) for i in new_tokens["new_token_ids"]] if new_tokens else None
    results, before_file = [], output / "perplexity_before.json"
    for index, stage in enumerate(stages):
        plan = prepare_stage(model, stage, new_ids)
        loop = dataclasses.replace(cfg.loop, max_steps=stage.steps or cfg.loop.max_steps)
        optim = dataclasses.replace(cfg.optim, lr=stage.lr or cfg.optim.lr)
        result = train(plan.model, train_set, collate_packed, causal_lm_step, output / "stages" / f"{index}_{stage.name}",
                       loop=loop, optim=optim, schedule=cfg.schedule, eval_sets=eval_sets, params=plan.params,
                       after_optimizer_step=plan.after_optimizer_step,
                       before_optimizer_step=plan.before_optimizer_step, run_config=to_dict(cfg))
        model = plan.finish(result.pop("model"))
        if index == 0 and result["eval_before"] and result["is_main_process"]:
            write_json(before_file, result["eval_before"])
        results.append({"stage": stage.name, "steps": result["steps"], "train_loss": result["train_loss"],
                        "eval": result["eval"], "tokens_per_second": result["tokens_per_second"]})

    for p in model.parameters():
        p.requires_grad_(True)
    # Carry the new-token record forward so a later stage can still find the new rows.
    extra = {"new_tokens.json": json.dumps(new_tokens, indent=2)} if new_tokens else {}
    save_final(model, output, tokenizer_dir=tokenizer_dir, extra_files=extra)
    before = read_json(before_file) if before_file.is_file() else {}
    after = results[-1]["eval"]
    summary = {"output": str(output), "stages": results, "perplexity_before": before, "perplexity_after": after}
    if result["is_main_process"]:
        write_json(output / "perplexity.json", {"before": before, "after": after})
        if before and after:
            write_text(output / "forgetting.md", "# Per-language validation perplexity\n\n" + perplexity_report(before, after))
    return summary
