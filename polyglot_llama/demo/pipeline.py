"""`polyglot-llama demo`: the whole mission in miniature, on the bundled sample text, on a laptop CPU.

Every step writes its stage config to ``OUTPUT/configs/NN_<stage>.yaml`` and runs it through the same
``load_config`` + ``run`` the CLI uses, so each step can be rerun by hand with
``polyglot-llama <stage> --config OUTPUT/configs/NN_<stage>.yaml``. A step whose outputs exist and whose
config and input bytes are unchanged is skipped, so an interrupted demo resumes where it stopped.
"""

from __future__ import annotations

import importlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

from ..cli import STAGES
from .. import fingerprint
from ..config import load_config, to_dict
from ..errors import UserError
from ..io import write_json, write_text
from . import data

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
SUPPORTED = tuple(data.FIRST_SENTENCE_INSTRUCTION)


@dataclass
class DemoConfig:
    lang: str = "ko"
    """Target language: ko, ja, zh or de (English is the base language and the replay language)."""
    output: str = "demo_output"
    """Directory for every stage's outputs, configs and the final report."""
    quick: bool = False
    """Fewer steps everywhere (the CI test); the full demo takes a few minutes on 2 CPU cores."""
    preset: str = "small"
    """Model shape of the base model (see `polyglot-llama model init --help`)."""
    seed: int = 0
    """Seed of every stage."""

    def __post_init__(self):
        if self.lang not in SUPPORTED or self.lang == "en":
            raise UserError(f"key 'lang' is {self.lang!r}; the demo's sample text covers: {', '.join(l for l in SUPPORTED if l != 'en')}")
        for required in ("data_recipes", "eval"):
            if not (REPO / required).is_dir():
                raise UserError(f"{REPO / required} not found: run the demo from a source checkout (pip install -e .)")


class Demo:
    """Runs the steps in order, records a summary line and the wall time of each."""

    def __init__(self, cfg: DemoConfig):
        self.cfg, self.out = cfg, Path(cfg.output)
        self.summary: list[dict] = []
        self.step_no = 0

    def path(self, *parts: str) -> str:
        return str(self.out.joinpath(*parts))

    def stage(self, stage: str, config: dict, done_marker: str, describe: Callable[[dict], str]) -> dict:
        """Write ``config`` as YAML, then run ``stage`` on it unless ``done_marker`` exists (resume)."""
        self.step_no += 1
        config_file = self.out / "configs" / f"{self.step_no:02d}_{stage.replace(' ', '_')}.yaml"
        write_text(config_file, f"# polyglot-llama {stage} --config {config_file.name}\n"
                   + yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
        result_file = self.out / "results" / f"{self.step_no:02d}_{stage.replace(' ', '_')}.json"
        # A step is reused only for the same config and the same input bytes (the language, upstream models and
        # data all show up here), never because its folder exists: a ja demo must not reuse ko artefacts.
        key_file = result_file.with_suffix(".fingerprint.json")
        key = fingerprint.compute(config, stage, config.get("output"))
        start = time.perf_counter()
        previous_key = _read_key(key_file)
        if Path(done_marker).exists() and result_file.is_file() and previous_key == key:
            result = json.loads(result_file.read_text())
            status = "reused"
        else:
            if previous_key != key and config.get("output") and fingerprint.is_run_folder(config["output"]):
                fingerprint.clear_output(config["output"])  # the demo's own step folder, made for other inputs
            write_json(key_file, key)  # before running: an interrupted step resumes, it is not cleared
            module = importlib.import_module(STAGES[stage].module)
            cfg = load_config(getattr(module, STAGES[stage].config), config_file)
            result = {k: v for k, v in module.run(cfg).items() if _jsonable(v)}
            write_json(result_file, result)
            status = "ran"
        line = describe(result)
        seconds = time.perf_counter() - start
        self.summary.append({"step": self.step_no, "stage": stage, "status": status, "seconds": round(seconds, 1),
                             "summary": line, "config": str(config_file)})
        print(f"[{self.step_no:02d}] {stage:<20} {seconds:6.1f} s  {line}", flush=True)
        return result


def _read_key(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _jsonable(value) -> bool:
    try:
        json.dumps(value)
        return True
    except TypeError:
        return False


def _fmt_ppl(results: dict) -> str:
    return ", ".join(f"{lang} {v['perplexity']:.1f}" for lang, v in sorted(results.items()))


def run(cfg: DemoConfig) -> dict:
    demo, lang, out = Demo(cfg), cfg.lang, Path(cfg.output)
    steps = (lambda full, quick: quick if cfg.quick else full)
    out.mkdir(parents=True, exist_ok=True)
    # A folder holding a demo of another language (or preset, seed, --quick) is an error, not a resume.
    fingerprint.claim(to_dict(cfg), out, "demo")
    started = time.perf_counter()
    langs = [lang, "en"]

    # 0. Inputs from the bundled sample text.
    inputs = out / "inputs"
    raw = data.write_raw_corpus(inputs / "raw" / "crawl.jsonl", list(SUPPORTED), seed=cfg.seed)
    sft_counts = data.write_sft_data(inputs / "sft", langs)
    pair_counts = data.write_preference_data(inputs / "preferences", langs)
    data.write_prompts(inputs / "prompts.jsonl", langs)
    print(f"inputs: crawl of {raw['documents']} documents (+{raw['malformed_lines']} malformed lines), "
          f"{sft_counts['train']} chat examples, {pair_counts['helpful_train']} helpfulness and "
          f"{pair_counts['safety_train']} safety pairs", flush=True)

    # 1. Corpus: one build per language recipe, language ID + quality + dedup + PII.
    corpus = {}
    for code in langs:
        recipe = yaml.safe_load((REPO / "data_recipes" / f"{code}.yaml").read_text(encoding="utf-8"))
        corpus[code] = demo.path("corpus", code)
        demo.stage("corpus build", {**recipe, "input": [str(inputs / "raw" / "crawl.jsonl")], "output": corpus[code]},
                   demo.path("corpus", code, "stats.json"),
                   lambda r: f"kept {r['documents_kept']} of {r['documents_in']} documents; rejected {r['documents_rejected']} (see stats.md)")
    kept = {code: [f"{corpus[code]}/kept/*.jsonl.gz"] for code in langs}

    # 2. English base: tokenizer and a tiny model pretrained on the English corpus.
    demo.stage("tokenizer train", {"input": kept["en"], "output": demo.path("tokenizer_en"), "vocab_size": 1000},
               demo.path("tokenizer_en", "tokenizer.json"), lambda r: f"vocabulary {r['vocab_size']}")
    demo.stage("model init", {"tokenizer": demo.path("tokenizer_en"), "output": demo.path("init"), "preset": cfg.preset,
                              "seed": cfg.seed, "overrides": {"max_position_embeddings": 1024}},
               demo.path("init", "model.safetensors"), lambda r: f"{r['parameters'] / 1e6:.2f}M parameters")
    # global_batch_size 0: the demo's small data sets step with grad_accum as given (the RM's paper default of
    # 512 pairs per step would make its 108 pairs a single step).
    loop = {"micro_batch_size": 8, "grad_accum": 1, "global_batch_size": 0, "log_every": 10, "seed": cfg.seed}
    demo.stage("pretrain", {
        "model": demo.path("init"), "output": demo.path("base"),
        "data": {"train": kept["en"], "seq_len": 128, "validation_fraction": 0.1},
        "loop": {**loop, "max_steps": steps(60, 40)}, "optim": {"lr": 3.0e-3},
        "schedule": {"warmup_steps": 10},
    }, demo.path("base", "model.safetensors"),
        lambda r: f"English validation perplexity {_fmt_ppl(r['perplexity_before'])} -> {_fmt_ppl(r['perplexity_after'])}")

    # 3. Vocabulary extension and fertility before/after.
    demo.stage("tokenizer extend", {"base": demo.path("base"), "input": kept[lang], "new_tokens": steps(600, 300),
                                    "output": demo.path("tokenizer_ext"), "lang": lang},
               demo.path("tokenizer_ext", "tokenizer.json"), lambda r: f"vocabulary {r['old_vocab_size']} -> {r['new_vocab_size']}")
    fertility = demo.stage("tokenizer fertility", {
        "tokenizer": [demo.path("base"), demo.path("tokenizer_ext")], "labels": ["base", "extended"],
        "input": [str(data.SAMPLE_DIR / f"{code}.jsonl") for code in langs], "output": demo.path("fertility"),
    }, demo.path("fertility", "fertility.json"), lambda r: f"table: {r['output']}/fertility.md, chart: {r['chart']}")
    demo.stage("model extend", {"model": demo.path("base"), "tokenizer": demo.path("tokenizer_ext"), "init": "subword-mean",
                                "output": demo.path("extended")},
               demo.path("extended", "new_tokens.json"), lambda r: f"{r['new_tokens']} new rows, init {r['init']}")

    # 4. Mixture (target language + English replay) and two-stage continued pretraining.
    demo.stage("corpus mix", {
        "tokenizer": demo.path("extended"), "output": demo.path("mix"),
        "sources": [{"name": f"{code}-web", "lang": code, "paths": kept[code]} for code in langs],
        "method": "weights", "weights": {lang: 1.0}, "replay": {"lang": "en", "share": 0.25},
        "validation_documents": 6, "seed": cfg.seed,
    }, demo.path("mix", "manifest.json"), lambda r: f"{r['tokens_drawn']} tokens drawn, shares {r['languages']}")
    adapted = demo.stage("pretrain", {
        "model": demo.path("extended"), "output": demo.path("adapted"),
        "data": {"train": [demo.path("mix", "mixture", "*.jsonl.gz")], "validation": [demo.path("mix", "validation", "*.jsonl.gz")], "seq_len": 128},
        "loop": loop, "optim": {"lr": 2.0e-3}, "schedule": {"warmup_steps": 5},
        "stages": [{"name": "new-rows", "trainable": "new_embeddings", "steps": steps(30, 15), "lr": 1.0e-2},
                   {"name": "full", "trainable": "all", "steps": steps(60, 30)}],
    }, demo.path("adapted", "model.safetensors"),
        lambda r: f"perplexity {_fmt_ppl(r['perplexity_before'])} -> {_fmt_ppl(r['perplexity_after'])}")

    # 5. Chat: SFT, reward models, a rejection-sampling round, PPO.
    sft_loop = {**loop, "micro_batch_size": 4, "epochs": steps(3.0, 1.0)}
    demo.stage("sft", {"model": demo.path("adapted"), "output": demo.path("sft"), "batch_size": 8,
                       "data": {"train": [str(inputs / "sft" / "train.jsonl")], "validation": [str(inputs / "sft" / "validation.jsonl")], "seq_len": 512},
                       "loop": sft_loop, "optim": {"lr": 2.0e-3}, "schedule": {"warmup_steps": 5, "warmup_ratio": 0.0}},
               demo.path("sft", "model.safetensors"),
               lambda r: f"answer loss {r['eval_before'] and _mean_loss(r['eval_before']):.3f} -> {_mean_loss(r['eval']):.3f}")
    reward_models = {}
    for kind, files in (("helpfulness", "helpful"), ("safety", "safety")):
        reward_models[kind] = demo.path(f"rm_{kind}")
        demo.stage("reward", {
            "model": demo.path("sft"), "output": reward_models[kind], "kind": kind,
            "data": {"train": [str(inputs / "preferences" / f"{files}_train.jsonl")],
                     "validation": [str(inputs / "preferences" / f"{files}_validation.jsonl")]},
            "loop": {**loop, "micro_batch_size": 8, "epochs": steps(4.0, 1.0)}, "optim": {"lr": 1.0e-3},
        }, demo.path(f"rm_{kind}", "model.safetensors"),
            lambda r: f"{r['kind']} RM held-out accuracy {r['validation_accuracy']['overall']['accuracy']:.2f} "
                      f"(per language {_per_language_accuracy(r['validation_accuracy'])})")
    reward = {"kind": "reward_models", "helpfulness_model": reward_models["helpfulness"], "safety_model": reward_models["safety"]}
    sampling = {"max_new_tokens": 32, "temperature": 1.2, "top_p": 1.0, "batch_size": 16}
    demo.stage("rejection-sampling", {
        "model": demo.path("sft"), "output": demo.path("rs_round1"), "prompts": [str(inputs / "prompts.jsonl")],
        "samples_per_prompt": steps(4, 2), "sampling": sampling, "reward": reward, "round": 1, "seed": cfg.seed,
        "sft": {"data": {"seq_len": 512}, "loop": {"epochs": 1.0, "micro_batch_size": 4}, "optim": {"lr": 5.0e-4}, "batch_size": 4},
    }, demo.path("rs_round1", "report.json"),
        lambda r: f"mean reward {r['all']['mean_reward']:.3f}, best-of-K {r['all']['mean_best_of_k']:.3f}, "
                  f"pool {r['pool_size']} answers, fine-tuned {r['sft']['steps']} steps")
    demo.stage("ppo", {
        "model": demo.path("rs_round1", "model"), "output": demo.path("ppo"), "prompts": [str(inputs / "prompts.jsonl")],
        "reward": reward, "sampling": {**sampling, "temperature": 1.0}, "steps": steps(10, 2), "batch_size": 16,
        "mini_batch_size": 8, "micro_batch_size": 8, "eval_fraction": 0.0, "eval_every": 0, "save_every": 0, "seed": cfg.seed,
        "optim": {"lr": 1.0e-5},
    }, demo.path("ppo", "summary.json"),
        lambda r: f"batch reward {r['first']['reward']:.3f} (step 1) -> {r['last']['reward']:.3f} (step {r['steps']}), KL {r['last']['kl']:.4f}")

    # DPO beside RM + PPO: the SFT model aligned directly on the helpfulness pairs (docs/dpo.md).
    demo.stage("dpo", {
        "model": demo.path("sft"), "output": demo.path("dpo"), "beta": 0.1, "batch_size": 8,
        "data": {"train": [str(inputs / "preferences" / "helpful_train.jsonl")],
                 "validation": [str(inputs / "preferences" / "helpful_validation.jsonl")]},
        "loop": {**loop, "micro_batch_size": 8, "epochs": steps(2.0, 1.0)}, "optim": {"lr": 1.0e-4},
        "schedule": {"warmup_steps": 5},
    }, demo.path("dpo", "dpo_results.json"),
        lambda r: f"held-out reward accuracy {r['validation_before']['overall']['accuracy']:.2f} -> "
                  f"{r['validation']['overall']['accuracy']:.2f} (per language {_per_language_accuracy(r['validation'])}), "
                  f"KL {r['kl_to_reference']['overall']:.4f} nats/token")

    # 6. Ghost Attention: build multi-turn data, train the PPO policy on it. The paper samples the answers
    #    from the latest RLHF model; a 1M-parameter policy after a few PPO steps often stops at once, so the
    #    demo samples from the SFT model, whose answers are never empty.
    demo.stage("gatt", {"model": demo.path("sft"), "output": demo.path("gatt"), "prompts": [str(inputs / "prompts.jsonl")],
                        "dialogues": steps(32, 8), "max_turns": 3, "sampling": {"max_new_tokens": 24}, "seed": cfg.seed},
               demo.path("gatt", "gatt.jsonl"), lambda r: f"{r['dialogues']} dialogues, languages {r['languages']}")
    demo.stage("sft", {"model": demo.path("ppo", "model"), "output": demo.path("chat"), "batch_size": 2,
                       "data": {"train": [demo.path("gatt", "gatt.jsonl")], "seq_len": 512, "validation_fraction": 0.0},
                       "loop": {**loop, "micro_batch_size": 2, "epochs": 1.0}, "optim": {"lr": 5.0e-4}},
               demo.path("chat", "model.safetensors"), lambda r: f"{r['steps']} steps on GAtt dialogues, loss {r['train_loss']:.3f}")

    # 7. Evaluation of base / adapted / chat side by side.
    evaluation = demo.stage("eval", {
        "suite": str(REPO / "eval" / ("quick.yaml" if cfg.quick else "default.yaml")),
        "model": [demo.path("base"), demo.path("adapted"), demo.path("chat")], "output": demo.path("eval"),
        "limit": steps(20, 5),
    }, demo.path("eval", "results.json"), lambda r: f"report: {r['report']}")

    total = time.perf_counter() - started
    summary = {"output": str(out), "language": lang, "wall_seconds": round(total, 1), "steps": demo.summary,
               "report": evaluation.get("report"), "fertility": fertility.get("json"),
               "perplexity": {"before": adapted.get("perplexity_before"), "after": adapted.get("perplexity_after")}}
    write_json(out / "summary.json", summary)
    write_text(out / "summary.md", "# polyglot-llama demo\n\n| step | stage | seconds | result |\n|---|---|---:|---|\n"
               + "".join(f"| {s['step']} | {s['stage']} | {s['seconds']} | {s['summary']} |\n" for s in demo.summary)
               + f"\nTotal: {total:.0f} s. Report: {evaluation.get('report')}\n")
    print(f"demo finished in {total:.0f} s; report: {evaluation.get('report')}; summary: {out / 'summary.md'}", flush=True)
    return {k: v for k, v in summary.items() if k != "steps"}


def _per_language_accuracy(accuracy: dict) -> str:
    return ", ".join(f"{lang} {v['accuracy']:.2f}" for lang, v in sorted(accuracy["language"].items()))


def _mean_loss(results: dict) -> float:
    losses = [v["loss"] for v in results.values()]
    return sum(losses) / len(losses) if losses else float("nan")
