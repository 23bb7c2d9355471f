"""`polyglot-llama rejection-sampling`: best-of-K sampling scored by the reward, then SFT on the pool.

One round (Llama 2 §3.2.3): sample K answers per prompt from the current policy (T ∈ [1.2, 1.3] was best
for 10–100 samples), score them, keep the best. The training pool holds, per prompt, the best answer over
this round *and every earlier round* (``previous_pools``; the paper's fix for the regressions of V3): the
earlier winners are rescored with the current reward and compete with the new samples. The policy is then
fine-tuned on the pool with the SFT stage.

Outputs in ``output``: ``samples.jsonl`` (all K answers with rewards; a rerun reuses it), ``pool.jsonl``
(the SFT training set, also the next round's ``previous_pools``), ``report.json`` / ``report.md`` /
``reward_vs_k.png`` (per language: mean / max reward, best-of-K gain, the reward-vs-K curve) and
``model/`` (the fine-tuned policy).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import torch

from ..config import write_resolved_config
from ..errors import UserError
from ..io import RejectCounter, expand_inputs, iter_records, write_json, write_jsonl
from ..runtime import Runtime
from .generation import SamplingConfig, derive_seed, generate
from .prompts import Prompt, by_language, encode_prompts, load_prompts, write_rejects
from .rewards import RewardConfig, RewardScorer
from .rs_report import language_stats, plot_reward_vs_k, write_markdown
from .runtime import finetune, load_policy, sft_config

log = logging.getLogger(__name__)


@dataclass
class RejectionSamplingConfig:
    model: str = ""
    """Current policy: a Hugging Face Llama chat checkpoint (SFT or an earlier round)."""
    tokenizer: str = ""
    """Tokenizer directory (default: the model directory)."""
    output: str = ""
    """Round directory: samples, pool, report and the fine-tuned model (output/model)."""
    prompts: list[str] = field(default_factory=list)
    """Prompt files (JSONL/Parquet globs) of {'prompt'} or {'messages'} records with optional 'lang', 'id', 'safety'."""
    default_lang: str = "en"
    """Language of prompt records without a 'lang' field."""
    samples_per_prompt: int = 10
    """K: answers sampled per prompt; the best one by the reward is kept."""
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(temperature=1.2, max_new_tokens=512))
    reward: RewardConfig = field(default_factory=RewardConfig)
    previous_pools: list[str] = field(default_factory=list)
    """pool.jsonl files of earlier rounds: their best answers compete with this round's samples."""
    rescore_pool: bool = True
    """Rescore earlier rounds' answers with the current reward before comparing (false: trust stored rewards)."""
    max_prompt_tokens: int = 1024
    """Prompts longer than this (in tokens) are skipped and counted."""
    round: int = 1
    """Round number: part of every sample's seed and of the report."""
    seed: int = 0
    """Base seed; each answer's seed derives from (seed, round, prompt id, sample index)."""
    frozen_placement: Literal["auto", "whole", "shard", "offload"] = "auto"
    """Sampling policy and reward models: whole on every GPU, shard (over the ranks), offload (CPU memory, streamed to one GPU per layer); auto shards them under an FSDP or ZeRO-3 launch, else whole."""
    finetune: bool = True
    """Fine-tune on the pool after sampling (false: only sample, score and report)."""
    sft: dict = field(default_factory=dict)
    """Overrides of the SFT stage's config for the fine-tune, e.g. {optim: {lr: 1e-5}, loop: {epochs: 1}}."""

    def __post_init__(self):
        if not self.model:
            raise UserError("key 'model' is required: the policy checkpoint to sample from")
        if not self.output:
            raise UserError("key 'output' is required: the round's output directory")
        if not self.prompts:
            raise UserError("key 'prompts' is empty; give JSONL/Parquet prompt files")
        if self.samples_per_prompt < 1:
            raise UserError(f"key 'samples_per_prompt' is {self.samples_per_prompt}; K must be at least 1")


def _sample_and_score(cfg: RejectionSamplingConfig, model, tokenizer, scorer, prompts: list[Prompt],
                      runtime: Runtime) -> tuple[list[list[str]], torch.Tensor]:
    """K answers per prompt and their rewards: (answers[i][k], rewards [N, K]).

    The N·K (prompt, k) jobs are split over the ranks; every answer's seed depends on (seed, round, prompt,
    k) only, so the gathered result is the same for any number of processes. Each rank's share is padded to
    the same length (sharded models need the same forwards on every rank) and the padding dropped."""
    K = cfg.samples_per_prompt
    jobs, real = runtime.padded_share([(p, k) for p in prompts for k in range(K)])
    seeds = [derive_seed(cfg.seed, cfg.round, p.id, k) for p, k in jobs]
    # vLLM reads the checkpoint from disk and takes one process per model: only a single process uses it.
    model_path = cfg.model if runtime.world == 1 else None
    generations = generate(model, tokenizer, [p.ids for p, _ in jobs], cfg.sampling, seeds, model_path=model_path,
                           progress=runtime.is_main)
    texts = [g.text for g in generations]
    # a cut-off answer is scored as it stands: the RMs do not see a closing </s> it never produced
    rewards = scorer([p for p, _ in jobs], texts, [g.finished for g in generations]).tolist() if jobs else []
    rows = runtime.gather_rows(list(zip(texts, rewards))[:real])
    answers = [[text for text, _ in rows[i * K:(i + 1) * K]] for i in range(len(prompts))]
    return answers, torch.tensor([r for _, r in rows]).view(len(prompts), K)


def _load_samples(path: Path, prompts: list[Prompt], K: int) -> tuple[list[list[str]], torch.Tensor] | None:
    """This round's samples from an earlier, interrupted run, if they match the prompts and K."""
    if not path.is_file():
        return None
    records = {r["id"]: r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}
    if set(records) != {p.id for p in prompts} or any(len(r["answers"]) != K for r in records.values()):
        log.warning("%s does not match this run's prompts or K; sampling again", path)
        return None
    log.info("reusing the samples of %s", path)
    answers = [records[p.id]["answers"] for p in prompts]
    return answers, torch.tensor([records[p.id]["rewards"] for p in prompts])


def _previous_pool(files: list[str]) -> dict[str, dict]:
    """Best stored entry per prompt id over the given pool files."""
    best: dict[str, dict] = {}
    rejects = RejectCounter()
    for record in iter_records(expand_inputs(files), rejects, text_field="response"):
        if record.get("id") is None or not isinstance(record.get("reward"), (int, float)):
            rejects.add(str(files), 0, "pool record without 'id' or numeric 'reward'", str(record))
            continue
        pid = str(record["id"])
        if pid not in best or record["reward"] > best[pid]["reward"]:
            best[pid] = record
    if rejects.count:
        raise UserError(f"previous_pools: {rejects.count} unreadable records ({rejects.rejected[0]['file']} line "
                        f"{rejects.rejected[0]['line']}: {rejects.rejected[0]['reason']}); pass pool.jsonl files of earlier rounds")
    return best


def _pool_record(prompt: Prompt, response: str, reward: float, round_no: int) -> dict:
    return {"id": prompt.id, "lang": prompt.lang, "messages": prompt.messages + [{"role": "assistant", "content": response}],
            "response": response, "reward": reward, "round": round_no, "safety": prompt.is_safety}


def _merge_pool(cfg, scorer, prompts, answers, rewards) -> tuple[list[dict], torch.Tensor, int]:
    """Per prompt, the best of this round's answers and the earlier pools' entry; plus earlier entries of
    prompts not in this round. Returns (pool records, pool rewards of this round's prompts [N], #kept old)."""
    previous = _previous_pool(cfg.previous_pools) if cfg.previous_pools else {}
    by_id = {p.id: p for p in prompts}
    old_here = [pid for pid in previous if pid in by_id]
    if cfg.rescore_pool and old_here:
        rescored = scorer([by_id[pid] for pid in old_here], [previous[pid]["response"] for pid in old_here])
        for pid, value in zip(old_here, rescored.tolist()):
            previous[pid] = {**previous[pid], "reward": value}
    best = rewards.max(dim=1)
    pool, pool_rewards, kept_old = [], [], 0
    for i, prompt in enumerate(prompts):
        record = _pool_record(prompt, answers[i][int(best.indices[i])], float(best.values[i]), cfg.round)
        old = previous.get(prompt.id)
        if old is not None and old["reward"] > record["reward"]:
            record, kept_old = old, kept_old + 1
        pool.append(record)
        pool_rewards.append(record["reward"])
    pool += [record for pid, record in previous.items() if pid not in by_id]
    return pool, torch.tensor(pool_rewards), kept_old


def run(cfg: RejectionSamplingConfig) -> dict:
    output = Path(cfg.output)
    runtime = Runtime()
    if runtime.is_main:
        output.mkdir(parents=True, exist_ok=True)
        write_resolved_config(cfg, output, "rejection-sampling")
    prompts, rejects = load_prompts(cfg.prompts, cfg.default_lang)
    place = partial(runtime.frozen, placement=cfg.frozen_placement)
    with runtime.loading_frozen():  # sampling and scoring only: no model here trains
        model, tokenizer = load_policy(cfg.model, cfg.tokenizer, torch.device("cpu"))
        model = place(model)
        scorer = RewardScorer(cfg.reward, tokenizer, place=place)
    prompts = encode_prompts(prompts, tokenizer, cfg.max_prompt_tokens, rejects)
    if runtime.is_main:
        write_rejects(rejects, output)

    samples_file = output / "samples.jsonl"
    cached = _load_samples(samples_file, prompts, cfg.samples_per_prompt)
    runtime.wait()  # no rank may find the file half-written by the main rank below
    if cached is None:
        answers, rewards = _sample_and_score(cfg, model, tokenizer, scorer, prompts, runtime)
        if runtime.is_main:
            write_jsonl(samples_file, ({"id": p.id, "lang": p.lang, "answers": answers[i], "rewards": rewards[i].tolist()}
                                       for i, p in enumerate(prompts)))
    else:
        answers, rewards = cached
    del model

    pool, pool_rewards, kept_old = _merge_pool(cfg, scorer, prompts, answers, rewards)
    reward_info = scorer.info
    del scorer  # free the reward models' memory before fine-tuning
    pool_file = output / "pool.jsonl"
    groups = by_language(prompts)
    report = {
        "round": cfg.round, "prompts": len(prompts), "samples_per_prompt": cfg.samples_per_prompt,
        "temperature": cfg.sampling.temperature, "reward": cfg.reward.kind, "reward_info": reward_info,
        "rejected_prompts": rejects.count, "pool_size": len(pool), "pool_kept_from_earlier_rounds": kept_old,
        "processes": runtime.world, "all": language_stats(rewards, pool_rewards),
        "languages": {lang: language_stats(rewards[idx], pool_rewards[idx]) for lang, idx in groups.items()},
    }
    if runtime.is_main:
        write_jsonl(pool_file, pool)
        for lang, s in report["languages"].items():
            log.info("round %d %s: mean reward %.4f, best-of-%d %.4f (gain %+.4f), pool %.4f", cfg.round, lang,
                     s["mean_reward"], cfg.samples_per_prompt, s["mean_best_of_k"], s["best_of_k_gain"], s["pool_mean_reward"])
        write_markdown(report, output / "report.md")
        plot_reward_vs_k(report, output / "reward_vs_k.png")
    runtime.wait()  # the pool is on disk before any rank fine-tunes on it
    if cfg.finetune:
        sft_summary = finetune(sft_config(cfg.model, cfg.tokenizer or cfg.model, pool_file, output / "model", cfg.sft))
        report["sft"] = {k: sft_summary[k] for k in ("steps", "train_loss", "rows") if k in sft_summary}
        report["model"] = str(output / "model")
    if runtime.is_main:
        write_json(output / "report.json", report)
    return report
