"""Rollout throughput and the PPO step's time split.

Generated tokens/s on the same model and prompts for:
  1. a plain one-prompt-at-a-time `model.generate(do_sample=True)` loop (baseline),
  2. plain batched `model.generate(do_sample=True)` over the prompts in their given order,
  3. `polyglot_llama.rlhf.generation.generate` (length-sorted batches, per-prompt seeds),
and one PPO iteration split into rollout (sampling), reward scoring, the frozen reference's pass, the policy
and critic log-prob/value pass, and the update.

    python bench/bench_rollout.py                       # a fresh 'small' model on the bundled sample text
    python bench/bench_rollout.py --model DIR --prompts 256 --batch-size 64 --max-new-tokens 128
    python bench/bench_rollout.py --reward-model          # score with a reward model (a forward pass) instead

Untrained models rarely emit EOS, so every answer runs to --max-new-tokens: the comparison is of decoding
machinery at equal work. Ratios are against the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
from _checkout import use_checkout

ROOT = use_checkout()

from polyglot_llama.chat import encode_prompt  # noqa: E402
from polyglot_llama.rlhf.generation import SamplingConfig, derive_seed, generate  # noqa: E402
from polyglot_llama.rlhf.runtime import load_policy  # noqa: E402
from polyglot_llama.runtime import Runtime  # noqa: E402

SAMPLE = ROOT / "polyglot_llama" / "resources" / "sample_text"


def build_model(preset: str, workdir: Path) -> Path:
    from polyglot_llama.model.init import ModelInitConfig, run
    from polyglot_llama.tokenizer.train import save_tokenizer_dir, train_llama_tokenizer

    texts = [json.loads(line)["text"] for f in sorted(SAMPLE.glob("*.jsonl")) for line in f.read_text().splitlines() if line.strip()]
    save_tokenizer_dir(train_llama_tokenizer(texts, 2000), workdir / "tokenizer")
    run(ModelInitConfig(tokenizer=str(workdir / "tokenizer"), output=str(workdir / "model"), preset=preset))
    return workdir / "model"


def bench_prompts(n: int):
    from polyglot_llama.rlhf.prompts import Prompt

    records = [json.loads(line) for f in sorted(SAMPLE.glob("*.jsonl")) for line in f.read_text().splitlines() if line.strip()]
    prompts = []
    for i in range(n):
        r = records[(i * 7) % len(records)]
        words = r["text"][: 20 + (i * 37) % 200]  # varied prompt lengths, as in real prompt sets
        prompts.append(Prompt(f"b{i}", r["lang"], [{"role": "user", "content": words}]))
    return prompts


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def plain_generate(model, tok, batch: list[list[int]], max_new_tokens: int, temperature: float) -> int:
    """HF sampling on one left-padded batch; returns the number of generated tokens (up to EOS)."""
    device = next(model.parameters()).device
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    width = max(map(len, batch))
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in batch], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch], device=device)
    out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=temperature, top_p=1.0,
                         max_new_tokens=max_new_tokens, eos_token_id=tok.eos_token_id, pad_token_id=pad)
    new = out[:, width:].tolist()
    return sum(row.index(tok.eos_token_id) + 1 if tok.eos_token_id in row else len(row) for row in new)


def timed(fn, device):
    sync(device)
    start = time.perf_counter()
    value = fn()
    sync(device)
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="", help="model directory (default: a fresh --preset model)")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads (0: torch's default); on a shared CPU, 1 avoids OpenMP barrier stalls that hit batch-1 decoding hardest")
    parser.add_argument("--skip-single", action="store_true", help="skip the one-at-a-time baseline (slow for big runs)")
    parser.add_argument("--reward-model", action="store_true",
                        help="score the PPO step with a reward model built from the policy checkpoint (as large as the policy, as in Llama 2) instead of the programmatic target_script reward")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    workdir = Path(tempfile.mkdtemp(prefix="bench_rollout_"))
    model_dir = Path(args.model) if args.model else build_model(args.preset, workdir)
    runtime = Runtime()
    device = runtime.device
    model, tok = load_policy(str(model_dir), device=device)
    model.eval()
    prompts = bench_prompts(args.prompts)
    for p in prompts:
        p.ids = encode_prompt(p.messages, tok)
    ids = [p.ids for p in prompts]
    n_params = sum(p.numel() for p in model.parameters())
    print(f"device {device}, model {model_dir} ({n_params / 1e6:.1f}M parameters), {len(ids)} prompts of "
          f"{min(map(len, ids))}-{max(map(len, ids))} tokens, batch {args.batch_size}, {args.max_new_tokens} new tokens, "
          f"{torch.get_num_threads()} CPU threads")
    plain_generate(model, tok, ids[:2], 4, args.temperature)  # warm-up

    rows = {}
    if not args.skip_single:
        tokens, seconds = timed(lambda: sum(plain_generate(model, tok, [p], args.max_new_tokens, args.temperature) for p in ids), device)
        rows["one-at-a-time generate"] = (tokens, seconds)
    tokens, seconds = timed(lambda: sum(plain_generate(model, tok, ids[i:i + args.batch_size], args.max_new_tokens, args.temperature)
                                        for i in range(0, len(ids), args.batch_size)), device)
    rows["batched generate"] = (tokens, seconds)
    sampling = SamplingConfig(max_new_tokens=args.max_new_tokens, temperature=args.temperature, batch_size=args.batch_size, backend="hf")
    seeds = [derive_seed(0, p.id) for p in prompts]
    gens, seconds = timed(lambda: generate(model, tok, ids, sampling, seeds, progress=False), device)
    rows["polyglot-llama generate"] = (sum(len(g.completion_ids) for g in gens), seconds)

    baseline = rows.get("one-at-a-time generate", rows["batched generate"])
    batched = rows["batched generate"]
    print(f"\n{'rollout':<26} {'tokens':>8} {'seconds':>9} {'tokens/s':>10} {'vs 1-at-a-time':>15} {'vs batched':>11}")
    for name, (tokens, secs) in rows.items():
        print(f"{name:<26} {tokens:>8} {secs:>9.2f} {tokens / secs:>10.1f} "
              f"{(tokens / secs) / (baseline[0] / baseline[1]):>14.2f}x {(tokens / secs) / (batched[0] / batched[1]):>10.2f}x")
    ppo_step_split(model_dir, prompts, sampling, runtime, workdir if args.reward_model else None)


def build_reward_model_dir(model_dir: Path, workdir: Path) -> Path:
    from polyglot_llama.model.checkpoint import save_checkpoint
    from polyglot_llama.model.reward_model import build_reward_model

    save_checkpoint(build_reward_model(model_dir, seed=1), workdir / "rm", tokenizer_dir=model_dir)
    return workdir / "rm"


def ppo_step_split(model_dir: Path, prompts, sampling: SamplingConfig, runtime: Runtime, rm_workdir: Path | None) -> None:
    """One PPO iteration (batch = all prompts, mini-batch = sampling.batch_size) timed by phase, with the
    policy and critic prepared by accelerate and the reference (and reward model) placed by `Runtime.frozen`,
    as in `ppo`."""
    from polyglot_llama.rlhf.ppo import PPOConfig, update
    from polyglot_llama.rlhf.ppo_model import PolicyWithValue
    from polyglot_llama.rlhf.ppo_rollout import collect, rollout_seeds
    from polyglot_llama.rlhf.rewards import RewardConfig, RewardScorer
    from polyglot_llama.train.loop import weight_decay_groups

    device = runtime.device
    policy, tok = load_policy(str(model_dir), device=torch.device("cpu"))
    reference = runtime.frozen(load_policy(str(model_dir), device=torch.device("cpu"))[0])
    model = PolicyWithValue(policy)
    n = len(prompts) - len(prompts) % sampling.batch_size
    cfg = PPOConfig(model=str(model_dir), output="unused", prompts=["unused"], batch_size=n, reward=RewardConfig(kind="target_script"),
                    mini_batch_size=sampling.batch_size, micro_batch_size=sampling.batch_size)
    optimizer = torch.optim.AdamW(weight_decay_groups([p for p in model.parameters() if p.requires_grad], 0.1), lr=1e-6, betas=(0.9, 0.95))
    model, optimizer = runtime.prepare(model, optimizer)
    if rm_workdir is None:
        scorer = RewardScorer(RewardConfig(kind="target_script"))
    else:
        rm = RewardConfig(helpfulness_model=str(build_reward_model_dir(model_dir, rm_workdir)), batch_size=sampling.batch_size)
        scorer = RewardScorer(rm, tok, place=runtime.frozen)
    batch = prompts[:n]
    for step in range(2):  # step 0 warms up allocator and kernels
        sync(device)
        rollout = collect(model, reference, tok, scorer, batch, sampling, rollout_seeds(0, step, batch), beta=0.01, gamma=1.0,
                          lam=0.95, shaping="logit_whiten", missing_eos_penalty=1.0, micro_batch_size=cfg.micro_batch_size,
                          runtime=runtime)
        _, update_s = timed(lambda: update(model, optimizer, rollout, cfg, step, runtime), device)
    phases = {"rollout (sampling)": rollout.timings["rollout_s"], "reward scoring": rollout.timings["scoring_s"],
              "reference log-probs": rollout.timings["reference_s"], "policy+critic pass": rollout.timings["logprob_s"],
              "update": update_s}
    total = sum(phases.values())
    tokens = int(rollout.mask.sum())
    print(f"\nPPO step: {n} rollouts, {tokens} response tokens, mini-batch {cfg.mini_batch_size}: {total:.2f} s")
    for name, secs in phases.items():
        print(f"  {name:<20} {secs:>7.2f} s  {100 * secs / total:>5.1f}%")


if __name__ == "__main__":
    main()
