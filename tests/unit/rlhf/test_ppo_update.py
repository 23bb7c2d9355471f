"""PPO's `collect` and `update` on a two-row rollout, every number computed by hand.

The policy is a bigram model (the hidden state of a position is the embedding of its token), so the
log-prob of response token j is log softmax(head(emb[previous token]) / T)[token] and its value is
w·emb[previous token] + b: the expected values below come from the weights directly, not from the code
under test. The rows have different prompt and answer lengths, so a column shifted by one shows.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import polyglot_llama.rlhf.ppo_rollout as ppo_rollout
from polyglot_llama.errors import UserError
from polyglot_llama.rlhf.generation import Generation, SamplingConfig
from polyglot_llama.rlhf.ppo import PPOConfig, update
from polyglot_llama.rlhf.ppo_model import PolicyWithValue
from polyglot_llama.rlhf.prompts import Prompt
from polyglot_llama.rlhf.rewards import RewardConfig
from polyglot_llama.runtime import Runtime
from polyglot_llama.train.loop import OptimConfig

V, H, PAD, EOS = 12, 4, 0, 2
T, BETA, GAMMA, LAM, PENALTY, VALUE_COEF = 0.7, 0.1, 0.9, 0.8, 0.5, 0.1
GENERATIONS = [Generation([1, 5, 6], [7, 2], "a", True), Generation([1, 8], [9, 10, 11], "b", False)]
SCORES = [0.9, 0.2]


class Trunk(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(V, H)

    def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=False):
        return SimpleNamespace(last_hidden_state=self.emb(input_ids))


class Bigram(nn.Module):
    config = SimpleNamespace(hidden_size=H)

    def __init__(self):
        super().__init__()
        self.trunk, self.head = Trunk(), nn.Linear(H, V)

    def get_decoder(self):
        return self.trunk

    def get_output_embeddings(self):
        return self.head

    def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=False, logits_to_keep=None):
        """As a Hugging Face causal LM: ``logits_to_keep`` (1-D column indices) picks the LM head's columns."""
        hidden = self.trunk(input_ids).last_hidden_state
        return SimpleNamespace(logits=self.head(hidden[:, logits_to_keep]))


def logp(policy, prev: int, token: int) -> float:
    logits = (policy.head.weight @ policy.trunk.emb.weight[prev] + policy.head.bias).detach()
    return float(torch.log_softmax(logits / T, dim=-1)[token])


def hand_gae(rewards: list[float], values: list[float]) -> list[float]:
    advantages, next_value, next_adv = [0.0] * len(rewards), 0.0, 0.0
    for t in reversed(range(len(rewards))):
        next_adv = rewards[t] + GAMMA * next_value - values[t] + GAMMA * LAM * next_adv
        advantages[t], next_value = next_adv, values[t]
    return advantages


@pytest.fixture()
def setup(monkeypatch):
    torch.manual_seed(0)
    model = PolicyWithValue(Bigram())
    with torch.no_grad():  # a non-zero critic, so that GAE fed zero values would differ
        model.value_head.weight.copy_(torch.tensor([[0.5, -0.3, 0.2, 0.1]]))
        model.value_head.bias.fill_(0.05)
    reference = copy.deepcopy(model.policy)
    calls = {}

    def fake_generate(policy, tokenizer, prompt_ids, sampling, seeds, progress=True):
        assert policy is model.policy and prompt_ids == [g.prompt_ids for g in GENERATIONS]
        return GENERATIONS

    def scorer(prompts, texts, finished):
        calls["scored"] = (texts, finished)
        return torch.tensor(SCORES)

    monkeypatch.setattr(ppo_rollout, "generate", fake_generate)
    runtime = Runtime("no")
    prompts = [Prompt(f"p{i}", "en", [{"role": "user", "content": "x"}], ids=g.prompt_ids) for i, g in enumerate(GENERATIONS)]
    rollout = ppo_rollout.collect(model, reference, SimpleNamespace(pad_token_id=PAD, eos_token_id=EOS), scorer, prompts,
                                  SamplingConfig(temperature=T), [0, 1], beta=BETA, gamma=GAMMA, lam=LAM, shaping="none",
                                  missing_eos_penalty=PENALTY, micro_batch_size=1, runtime=runtime)
    return model, rollout, runtime, calls


def expected(model):
    """Per row: (previous tokens, response tokens, old log-probs, values, raw advantages)."""
    policy, w, b = model.policy, model.value_head.weight[0].detach(), float(model.value_head.bias.detach())
    rows = []
    for g, score in zip(GENERATIONS, SCORES):
        seq = g.prompt_ids + g.completion_ids
        prev, toks = seq[len(g.prompt_ids) - 1:-1], g.completion_ids
        lps = [logp(policy, p, t) for p, t in zip(prev, toks)]
        values = [float(w @ policy.trunk.emb.weight[p].detach()) + b for p in prev]
        shaped = score - (0.0 if g.finished else PENALTY)
        rewards = [0.0] * (len(toks) - 1) + [shaped]  # KL = 0 at step 0: only the score, at the last token
        rows.append((prev, toks, lps, values, hand_gae(rewards, values)))
    return rows


def test_collect_aligns_columns_and_computes_gae_by_hand(setup):
    model, rollout, _, calls = setup
    assert calls["scored"] == (["a", "b"], [True, False])  # the cut-off answer is marked for the scorer
    assert rollout.prompt_width == 3
    assert rollout.input_ids.tolist() == [[1, 5, 6, 7, 2, PAD], [PAD, 1, 8, 9, 10, 11]]
    assert rollout.attention_mask.tolist() == [[1, 1, 1, 1, 1, 0], [0, 1, 1, 1, 1, 1]]
    assert rollout.mask.tolist() == [[1, 1, 0], [1, 1, 1]]
    assert rollout.finished.tolist() == [True, False]
    rows = expected(model)
    raw = torch.zeros(2, 3)
    for i, (_, toks, lps, values, adv) in enumerate(rows):
        n = len(toks)
        assert rollout.old_logprobs[i, :n].tolist() == pytest.approx(lps, abs=1e-5)  # at temperature T
        assert rollout.old_values[i, :n].tolist() == pytest.approx(values, abs=1e-5)
        raw[i, :n] = torch.tensor(adv)
        # returns are the raw (unwhitened) advantages plus the values
        assert rollout.returns[i, :n].tolist() == pytest.approx([a + v for a, v in zip(adv, values)], abs=1e-5)
    assert torch.allclose(rollout.ref_logprobs, rollout.old_logprobs, atol=1e-6)
    assert rollout.kl.abs().max() < 1e-6  # the reference is the starting policy: KL = 0 at step 0
    # advantages are whitened over the 5 response tokens of the batch (population variance)
    valid = raw[rollout.mask.bool()]
    whitened = (raw - valid.mean()) / valid.var(unbiased=False).add(1e-8).sqrt() * rollout.mask
    assert torch.allclose(rollout.advantages, whitened, atol=1e-5)
    # padding stays zero everywhere
    for t in (rollout.old_logprobs, rollout.old_values, rollout.returns, rollout.advantages):
        assert t[0, 2] == 0


class Recorder(torch.optim.SGD):
    """SGD with lr 0 that keeps a copy of the gradients it is asked to apply."""

    def __init__(self, params):
        super().__init__(params, lr=0.0)
        self.grads: list[dict[str, torch.Tensor]] = []
        self.named = None

    def step(self, closure=None):
        self.grads.append({name: p.grad.clone() for name, p in self.named if p.grad is not None})
        return super().step(closure)


def ppo_cfg(**extra):
    settings = {"sampling": SamplingConfig(temperature=T), "batch_size": 2, "mini_batch_size": 2, "micro_batch_size": 1,
                "value_coef": VALUE_COEF, **extra}
    return PPOConfig(model="m", output="o", prompts=["p"], reward=RewardConfig(kind="target_script"), **settings)


def test_update_gradients_by_hand_with_grad_clip_0_as_off(setup):
    model, rollout, runtime, _ = setup
    optimizer = Recorder(model.parameters())
    optimizer.named = list(model.named_parameters())
    stats = update(model, optimizer, rollout, ppo_cfg(optim=OptimConfig(lr=0.1, grad_clip=0.0)), 0, runtime)
    # On-policy: the first update sees exactly the behaviour log-probs (same temperature), ratio 1 everywhere.
    assert stats["approx_kl"] == pytest.approx(0.0, abs=1e-10) and stats["clip_fraction"] == 0.0
    grads = optimizer.grads[0]
    rows = expected(model)
    emb, head = model.policy.trunk.emb.weight.detach(), model.policy.head
    g_w, g_b, g_head_b = torch.zeros(H), 0.0, torch.zeros(V)
    for i, (prev, toks, _, _, adv) in enumerate(rows):
        n = len(toks)
        # each row is its own micro-batch: weight ½ each; losses are means over the row's tokens
        for t in range(n):
            # value loss ½(V−R)² with R = A_raw + V: dL/dV = −A_raw
            g_w += 0.5 * VALUE_COEF * (-adv[t]) / n * emb[prev[t]]
            g_b += 0.5 * VALUE_COEF * (-adv[t]) / n
            # policy loss −Â·ρ at ρ = 1: d/dlogits = −Â·(onehot − softmax(z/T)) / T
            probs = torch.softmax((head.weight @ emb[prev[t]] + head.bias).detach() / T, dim=-1)
            onehot = torch.nn.functional.one_hot(torch.tensor(toks[t]), V).float()
            g_head_b += 0.5 * (-float(rollout.advantages[i, t])) * (onehot - probs) / T / n
    assert grads["value_head.weight"][0].tolist() == pytest.approx(g_w.tolist(), abs=1e-5)
    assert float(grads["value_head.bias"]) == pytest.approx(g_b, abs=1e-6)
    assert g_w.abs().max() > 1e-3  # the value loss does reach the value head
    assert grads["policy.head.bias"].tolist() == pytest.approx(g_head_b.tolist(), abs=1e-5)
    assert stats["grad_norm"] > 0


def test_grad_clip_clips(setup):
    model, rollout, runtime, _ = setup
    optimizer = Recorder(model.parameters())
    optimizer.named = list(model.named_parameters())
    update(model, optimizer, rollout, ppo_cfg(optim=OptimConfig(lr=0.1, grad_clip=1e-3)), 0, runtime)
    norm = torch.cat([g.flatten() for g in optimizer.grads[0].values()]).norm()
    assert float(norm) == pytest.approx(1e-3, rel=1e-3)


def test_off_policy_settings_are_refused():
    with pytest.raises(UserError, match="temperature"):
        ppo_cfg(sampling=SamplingConfig(temperature=0))
    with pytest.raises(UserError, match="top_p"):
        ppo_cfg(sampling=SamplingConfig(temperature=0.7, top_p=0.9))
    with pytest.raises(UserError, match="top_p"):
        ppo_cfg(sampling=SamplingConfig(repetition_penalty=1.2))
    with pytest.raises(UserError, match="key 'vllm_gpu_memory' is 1.5"):
        ppo_cfg(vllm_gpu_memory=1.5)


def test_only_an_explicit_vllm_backend_builds_an_engine():
    from polyglot_llama.rlhf.generation import vllm_available
    from polyglot_llama.rlhf.ppo import rollout_engine

    assert rollout_engine(ppo_cfg(sampling=SamplingConfig(temperature=T, backend="auto")), None, None) is None
    if not vllm_available():  # here: a one-line error, not a silent fall-back to HF
        with pytest.raises(UserError, match="key 'backend' is 'vllm' but vLLM is not installed"):
            rollout_engine(ppo_cfg(sampling=SamplingConfig(temperature=T, backend="vllm")), None, None)
