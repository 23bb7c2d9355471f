"""Frozen models sharded over 2 CPU processes (gloo, FSDP2 ``fully_shard``) give the 1-process numbers.

`Runtime.frozen(model, "shard")` is what PPO and rejection sampling do with the reference and reward models
(and rejection sampling's sampling policy) under FSDP. Each rank scores its half of a batch with the
sharded models; gathered, the reference log-probs, reward-model scores and sampled answers must equal the
unsharded 1-process values (1e-5), also when one rank's answers end steps before the other's (synced
generation), while each rank holds about half of each model's parameter bytes.
The same worker checks the two things the vLLM weight push relies on under FSDP2: every rank receives the
full, unsharded policy weights (`Runtime.full_parameters`), and generation from the sharded trained policy
(`Runtime.unwrapped_for_generation`) equals generation from the whole one.

Run as a script under torchrun, this file is the worker: ``torchrun --nproc_per_node 2
test_rlhf_frozen_sharding.py MODEL RM OUT``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import torch

from polyglot_llama.rlhf.generation import SamplingConfig, generate
from polyglot_llama.rlhf.prompts import Prompt
from polyglot_llama.rlhf.rewards import RewardConfig, RewardScorer

T = 0.7  # a sampling temperature ≠ 1, so that the reference log-probs are those of softmax(logits / T)
ROWS = 4
ANSWERS = ["hello there", "안녕하세요 여러분", "a much longer answer than the others, with commas", ""]
SAMPLING = SamplingConfig(max_new_tokens=6, temperature=1.0, batch_size=2, backend="hf")


def batch(vocab: int) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """(input_ids [4, P+R], attention_mask, P, R): left-padded prompts of 3-6 tokens, answers of 2-5 tokens
    followed by right padding, as PPO lays out a rollout."""
    g = torch.Generator().manual_seed(0)
    P, R = 6, 5
    ids = torch.randint(3, vocab, (ROWS, P + R), generator=g)
    mask = torch.zeros(ROWS, P + R, dtype=torch.long)
    for row, (n_prompt, n_answer) in enumerate([(3, 5), (6, 2), (4, 4), (5, 3)]):
        mask[row, P - n_prompt:P + n_answer] = 1
    return ids * mask, mask, P, R


def prompts() -> list[Prompt]:
    texts = [("en", "Say hi"), ("ko", "인사해 주세요"), ("en", "Tell me more"), ("zh", "你好")]
    return [Prompt(f"p{i}", lang, [{"role": "user", "content": text}]) for i, (lang, text) in enumerate(texts)]


def prompt_ids(tokenizer) -> list[list[int]]:
    from polyglot_llama.chat import encode_prompt

    return [encode_prompt(p.messages, tokenizer) for p in prompts()]


def param_bytes(model) -> int:
    """Bytes of the parameters this process holds (its shard of a DTensor)."""
    from torch.distributed.tensor import DTensor

    local = (p.to_local() if isinstance(p, DTensor) else p for p in model.parameters())
    return sum(t.numel() * t.element_size() for t in local)


def worker(model_dir: str, rm_dir: str, out: Path) -> None:
    from torch.distributed.fsdp import fully_shard

    from polyglot_llama.model.checkpoint import load_causal_lm, load_tokenizer
    from polyglot_llama.rlhf.ppo_model import PolicyWithValue, reference_logprobs
    from polyglot_llama.runtime import Runtime

    torch.set_num_threads(1)
    runtime = Runtime("no")
    tokenizer = load_tokenizer(model_dir)
    mine = runtime.shard(ROWS, "rows")
    result: dict = {"rank": runtime.rank}

    reference = runtime.frozen(load_causal_lm(model_dir), "shard")
    ids, mask, P, R = batch(len(tokenizer))
    result["ref_logprobs"] = reference_logprobs(reference, ids[mine], mask[mine], P, R, T)
    result["ref_bytes"] = param_bytes(reference)

    scorer = RewardScorer(RewardConfig(helpfulness_model=rm_dir), tokenizer, place=partial(runtime.frozen, placement="shard"))
    finished = [True, False, True, True]
    result["scores"] = scorer(prompts()[mine], ANSWERS[mine], finished[mine])
    result["rm_bytes"] = param_bytes(scorer.models["helpfulness"][0])

    policy = runtime.frozen(load_causal_lm(model_dir), "shard")
    seeds = [11, 12, 13, 14]
    result["frozen_answers"] = [g.completion_ids for g in generate(policy, tokenizer, prompt_ids(tokenizer)[mine], SAMPLING,
                                                                   seeds[mine], progress=False)]

    # A trained policy sharded as accelerate's FSDP2 does it: one unit per decoder layer, one at the root.
    torch.manual_seed(0)
    trained = PolicyWithValue(load_causal_lm(model_dir))
    for layer in trained.policy.model.layers:
        fully_shard(layer)
    fully_shard(trained)
    result["pushed"] = {name: tensor.clone() for name, tensor in runtime.full_parameters(trained, prefix="policy.")}
    with runtime.unwrapped_for_generation(trained) as unwrapped:
        result["trained_answers"] = [g.completion_ids for g in generate(unwrapped.policy, tokenizer, prompt_ids(tokenizer)[mine],
                                                                        SAMPLING, seeds[mine], progress=False)]

    # Ranks whose answers end at different steps: the first token of prompt 0's answer (rank 0's) is made the
    # EOS, so rank 0 is done after one step while rank 1 decodes on; the sharded forwards must stay paired.
    one = slice(runtime.rank, runtime.rank + 1)  # prompt r on rank r
    ragged = generate(policy, ragged_tokenizer(model_dir), prompt_ids(tokenizer)[:2][one], SAMPLING, RAGGED_SEEDS[one],
                      progress=False)
    result["ragged_answers"] = [g.completion_ids for g in ragged]
    torch.save(result, out / f"rank{runtime.rank}.pt")


RAGGED_SEEDS = [21, 22]


def ragged_tokenizer(model_dir):
    """The tokenizer with its EOS moved to the first token the whole model samples for prompt 0 (seed 21)."""
    from polyglot_llama.model.checkpoint import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    first = generate(load_causal_lm(model_dir).eval(), tokenizer, prompt_ids(tokenizer)[:1], SAMPLING, RAGGED_SEEDS[:1],
                     progress=False)[0].completion_ids[0]
    tokenizer.eos_token = tokenizer.convert_ids_to_tokens(first)
    return tokenizer


# ------------------------------------------------------------------------------------------------ test


def test_sharded_frozen_models_equal_one_process(multi_model_dir, tmp_path):
    from polyglot_llama.model.checkpoint import load_causal_lm, load_tokenizer, save_checkpoint
    from polyglot_llama.model.reward_model import build_reward_model

    rm_dir = tmp_path / "rm"
    save_checkpoint(build_reward_model(multi_model_dir, seed=1), rm_dir, tokenizer_dir=multi_model_dir)
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parents[1]),
                                          os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29547", __file__,
           str(multi_model_dir), str(rm_dir), str(tmp_path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]

    # The unsharded 1-process values, computed without the code under test where it can be.
    model = load_causal_lm(multi_model_dir).eval()
    tokenizer = load_tokenizer(multi_model_dir)
    ids, mask, P, R = batch(len(tokenizer))
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp_min(0)).logits
    logp = torch.log_softmax(logits[:, P - 1:P - 1 + R] / T, dim=-1)
    expected_ref = logp.gather(-1, ids[:, P:P + R].unsqueeze(-1)).squeeze(-1)
    sharded_ref = torch.cat([r["ref_logprobs"] for r in ranks])
    assert sharded_ref.shape == (ROWS, R)
    assert torch.allclose(sharded_ref, expected_ref, atol=1e-5, rtol=0), (sharded_ref - expected_ref).abs().max()

    scorer = RewardScorer(RewardConfig(helpfulness_model=str(tmp_path / "rm")), tokenizer)
    expected_scores = scorer(prompts(), ANSWERS, [True, False, True, True])
    sharded_scores = torch.cat([r["scores"] for r in ranks])
    assert torch.allclose(sharded_scores, expected_scores, atol=1e-5, rtol=0), (sharded_scores, expected_scores)
    assert len(set(expected_scores.tolist())) == ROWS  # four different scores: a row swap would show

    seeds = [11, 12, 13, 14]
    expected = generate(model, tokenizer, prompt_ids(tokenizer), SAMPLING, seeds, progress=False)
    expected_answers = [g.completion_ids for g in expected]
    assert ranks[0]["frozen_answers"] + ranks[1]["frozen_answers"] == expected_answers
    assert ranks[0]["trained_answers"] + ranks[1]["trained_answers"] == expected_answers
    ragged = [g.completion_ids for g in generate(model, ragged_tokenizer(multi_model_dir), prompt_ids(tokenizer)[:2], SAMPLING,
                                                 RAGGED_SEEDS, progress=False)]
    assert len(ragged[0]) == 1 and len(ragged[1]) > 1  # rank 0 finished after one step, rank 1 did not
    assert ranks[0]["ragged_answers"] + ranks[1]["ragged_answers"] == ragged

    # Each rank holds about half of each frozen model (the two halves add up to the whole).
    whole = param_bytes(model)
    rm_whole = param_bytes(scorer.models["helpfulness"][0])
    for key, total in (("ref_bytes", whole), ("rm_bytes", rm_whole)):
        per_rank = [r[key] for r in ranks]
        assert sum(per_rank) == total, (key, per_rank, total)
        assert all(abs(b / total - 0.5) < 0.05 for b in per_rank), (key, per_rank, total)

    # The vLLM weight push under FSDP2: every rank gets every policy weight, full-size, by its checkpoint name.
    state = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight" or not model.config.tie_word_embeddings}
    for r in ranks:
        assert sorted(r["pushed"]) == sorted(state)
        for name, tensor in state.items():
            assert torch.equal(r["pushed"][name], tensor), name


if __name__ == "__main__":
    worker(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
