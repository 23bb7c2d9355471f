"""`polyglot-llama <stage>`: one table of stages, each a (config dataclass, run function) pair.

Every stage is ``run(cfg) -> dict``, the same function the Python API calls. Options come from the config
dataclass: ``--config FILE.yaml`` (or the stage's alias such as ``--recipe``), ``--set key.sub=value`` and
one ``--field`` flag per field, documented by the field's attribute docstring. Modules are imported only
for the stage being run, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import sys
import traceback
import typing
from typing import NamedTuple

from . import fingerprint, progress, runlog
from .config import _unwrap_optional, field_docs, load_config, parse_override, to_dict
from .errors import UserError


class Stage(NamedTuple):
    module: str
    config: str
    help: str
    config_flag: str = "config"


STAGES: dict[str, Stage] = {
    "corpus build": Stage("polyglot_llama.corpus.build", "CorpusBuildConfig", "Build a filtered corpus with datatrove: language ID, quality, dedup, PII.", "recipe"),
    "corpus lid-model": Stage("polyglot_llama.corpus.lid_model", "LidModelConfig", "Fetch and cache a fastText language-ID model (default: lid.176.ftz)."),
    "corpus mix": Stage("polyglot_llama.corpus.mix", "MixConfig", "Plan a multi-language mixture (temperature / UniMax / weights, replay) and write it."),
    "tokenizer train": Stage("polyglot_llama.tokenizer.train", "TokenizerTrainConfig", "Train a Llama-2-style BPE tokenizer (byte fallback, split digits)."),
    "tokenizer extend": Stage("polyglot_llama.tokenizer.extend", "TokenizerExtendConfig", "Add target-language pieces and merges to a base tokenizer."),
    "tokenizer fertility": Stage("polyglot_llama.tokenizer.fertility", "FertilityConfig", "Tokens per word/char, bytes per token, byte-fallback share, per language."),
    "model init": Stage("polyglot_llama.model.init", "ModelInitConfig", "Write a freshly initialised Llama model directory from a preset."),
    "model extend": Stage("polyglot_llama.model.extend", "ModelExtendConfig", "Resize a model's embeddings and LM head to an extended tokenizer."),
    "pretrain": Stage("polyglot_llama.train.pretrain", "PretrainConfig", "(Continued) pretraining on packed sequences, with freezing schedule and replay."),
    "sft": Stage("polyglot_llama.train.sft", "SFTConfig", "Supervised fine-tuning in the model's chat template, loss on answers only."),
    "gatt": Stage("polyglot_llama.train.gatt", "GattConfig", "Build Ghost Attention training data (multi-turn, instruction in turn 1)."),
    "reward": Stage("polyglot_llama.train.reward", "RewardConfig", "Train a helpfulness or safety reward model with the margin ranking loss."),
    "dpo": Stage("polyglot_llama.train.dpo", "DPOConfig", "Direct preference optimisation (DPO / IPO / ODPO with Llama 2 strength offsets) from an SFT checkpoint."),
    "reward eval": Stage("polyglot_llama.evaluation.reward_eval", "RewardEvalConfig", "Reward-model accuracy per language and strength, plots and tables."),
    "rejection-sampling": Stage("polyglot_llama.rlhf.rejection_sampling", "RejectionSamplingConfig", "Best-of-K sampling scored by the reward models, then SFT on the pool."),
    "ppo": Stage("polyglot_llama.rlhf.ppo", "PPOConfig", "PPO on the combined reward with a KL penalty to the reference policy."),
    "rlhf": Stage("polyglot_llama.rlhf.driver", "RLHFConfig", "Iterate rejection-sampling rounds, then PPO; resumable at round boundaries."),
    "context-distill": Stage("polyglot_llama.rlhf.context_distillation", "ContextDistillationConfig", "Safety context distillation with a safety preprompt, kept where the safety RM prefers it."),
    "annotate prepare": Stage("polyglot_llama.annotate.prepare", "PrepareConfig", "Sample answer pairs from two checkpoints/temperatures into an annotation database."),
    "annotate import": Stage("polyglot_llama.annotate.import_pairs", "ImportConfig", "Load answer pairs in the chosen/rejected layout as items to annotate."),
    "annotate add-annotator": Stage("polyglot_llama.annotate.annotators", "AddAnnotatorConfig", "Create an annotator or admin login; prints the token once."),
    "annotate serve": Stage("polyglot_llama.annotate.serve", "ServeConfig", "Run the local annotation web app (Llama 2 comparison protocol)."),
    "annotate export": Stage("polyglot_llama.annotate.export", "ExportConfig", "Write labels as reward/dpo preference JSONL, split helpfulness/safety."),
    "eval": Stage("polyglot_llama.evaluation.suite", "EvalConfig", "Run an evaluation suite on one or more checkpoints; JSON, Markdown and HTML report."),
    "demo": Stage("polyglot_llama.demo", "DemoConfig", "Adapt a tiny Llama to a new language end to end on the bundled sample data."),
}


def _top_help() -> str:
    width = max(map(len, STAGES))
    lines = ["usage: polyglot-llama <stage> [--config FILE.yaml] [--set key=value ...] [--option value ...]", "", "stages:"]
    lines += [f"  {name:<{width}}  {stage.help}" for name, stage in STAGES.items()]
    lines += ["", "Run `polyglot-llama <stage> --help` for a stage's options."]
    return "\n".join(lines)


def _field_default(f: dataclasses.Field, parent_default=None):
    """A field's default value, as the enclosing section's own default sets it (e.g. PPO's lr 1e-6)."""
    if parent_default is not None:
        return getattr(parent_default, f.name)
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        try:
            return f.default_factory()  # type: ignore[misc]
        except UserError:  # a section whose defaults alone are incomplete (e.g. a reward with no model)
            return None
    return dataclasses.MISSING


def _leaf_fields(cls: type, prefix: str = "", defaults=None):
    """(dotted name, type, doc, default) for every field, descending into nested config dataclasses."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp, _ = _unwrap_optional(hints[f.name])
        default = _field_default(f, defaults)
        if dataclasses.is_dataclass(tp):
            yield from _leaf_fields(tp, f"{prefix}{f.name}.", default)
        else:
            yield f"{prefix}{f.name}", tp, docs.get(f.name, ""), default


def build_parser(name: str, stage: Stage, config_cls: type) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"polyglot-llama {name}", description=stage.help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    flags = [f"--{stage.config_flag}"] + (["--config"] if stage.config_flag != "config" else [])
    parser.add_argument(*flags, dest="config_file", metavar="FILE.yaml", help="YAML config; flags below override it")
    parser.add_argument("--overwrite", dest="overwrite_", action="store_true",
                        help="delete the output folder of a previous, different run first (only folders polyglot-llama wrote)")
    parser.add_argument("--verbose", dest="verbose_", action="store_true",
                        help="show library logging (transformers, datatrove) on the console, not only in OUTPUT/<stage>.log")
    parser.add_argument("--set", dest="set_overrides_", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key, dotted for nested ones (repeatable)")
    for dotted, tp, doc, default in _leaf_fields(config_cls):
        flag = "--" + dotted.replace("_", "-")
        is_list = typing.get_origin(tp) in (list, tuple)
        shown = "required" if default is dataclasses.MISSING else repr(default)
        help_text = f"{doc} (default: {shown})".replace("%", "%%")
        if is_list:
            parser.add_argument(flag, dest=dotted, action="extend", nargs="+", metavar="VALUE", help=help_text)
        elif tp is bool:
            parser.add_argument(flag, dest=dotted, nargs="?", const="true", metavar="BOOL", help=help_text)
        else:
            parser.add_argument(flag, dest=dotted, metavar=getattr(tp, "__name__", "VALUE").upper(), help=help_text)
    return parser


def _find_stage(argv: list[str]) -> tuple[str, list[str]] | None:
    for n_words in (2, 1):
        name = " ".join(argv[:n_words])
        if name in STAGES:
            return name, argv[n_words:]
    return None


def resolve(name: str, argv: list[str]):
    """Parse a stage's command line into its config; returns (config, run function)."""
    cfg, run, _ = resolve_with_options(name, argv)
    return cfg, run


def resolve_with_options(name: str, argv: list[str]):
    """Like `resolve`, plus the CLI-only options: ``{"overwrite": bool, "verbose": bool}``."""
    stage = STAGES[name]
    module = importlib.import_module(stage.module)
    config_cls = getattr(module, stage.config)
    args = build_parser(name, stage, config_cls).parse_args(argv)
    overrides = dict(parse_override(o) for o in args.set_overrides_)
    for dotted, tp, _, _ in _leaf_fields(config_cls):
        value = getattr(args, dotted, None)
        if value is not None:
            overrides[dotted] = value
    options = {"overwrite": args.overwrite_, "verbose": args.verbose_}
    return load_config(config_cls, args.config_file, overrides), module.run, options


def main(argv: list[str] | None = None) -> int:
    """Run one stage. Exit 0 on success, 2 on a `UserError` (one line), 1 on an unexpected error (one line;
    the traceback goes to the run's log file), 130 when interrupted."""
    argv = list(sys.argv[1:] if argv is None else argv)
    found = _find_stage(argv)
    if found is None:
        print(_top_help())
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    name, rest = found
    log_file = None
    try:
        cfg, run, options = resolve_with_options(name, rest)
        output = fingerprint.output_of(cfg)
        # Under torchrun every rank runs this: the main process alone clears the shared output folder (another
        # rank, checking the claim meanwhile, would find the previous run's fingerprint).
        main_process = runlog.process_rank() == 0
        if output and options["overwrite"] and main_process:
            fingerprint.clear_output(output)
        if output and os.path.exists(output) and not os.path.isdir(output):
            raise UserError(f"output {output} is a file, not a folder; choose another --output")
        claims = main_process or not options["overwrite"]
        if output and os.path.isdir(output) and claims:  # before the stage touches it: never resume or reuse another run's output
            fingerprint.claim(to_dict(cfg), output, name)
        log_file = runlog.setup(name, output, options["verbose"])
        try:
            result = run(cfg)
        finally:
            progress.end_stage()  # the bar's line ends here, before an error line
    except UserError as e:
        print(f"polyglot-llama {name}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"polyglot-llama {name}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, not a user mistake: one line here, the traceback in the log file
        log_file = log_file or runlog.log_file_for(name, None)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "a", encoding="utf-8") as f:
            f.write(traceback.format_exc())
        if "--verbose" in rest:
            traceback.print_exc()
        print(f"polyglot-llama {name}: internal error: {type(e).__name__}: {_first_line(e)} "
              f"(traceback in {log_file}; please report it)", file=sys.stderr)
        return 1
    finally:
        runlog.close()
    if not main_process:  # every rank returns the result; one summary line per run
        return 2 if isinstance(result, dict) and result.get("failed") else 0
    print(json.dumps(result, ensure_ascii=False, default=str))
    if isinstance(result, dict) and result.get("failed"):  # eval: some (checkpoint, task) pairs have no result
        print(f"polyglot-llama {name}: error: {result['failed']} requested result(s) failed, first: "
              f"{(result.get('errors') or ['?'])[0]}; partial results in {result.get('output')}", file=sys.stderr)
        return 2
    return 0


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else "(no message)"


if __name__ == "__main__":
    sys.exit(main())
