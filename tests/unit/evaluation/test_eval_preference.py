"""Task kind ``preference``: DPO implicit-reward accuracy of any checkpoint against a reference, hand-checked.

The policy is the tiny model of conftest, the reference a differently seeded tiny model on the same
tokenizer. Expected values: each answer's log-prob summed by hand from one unpadded float64 forward over the
scored positions of the chat-rendered row, β·(policy − reference), compared pair by pair.
"""

from __future__ import annotations

import json

import pytest
import torch

from polyglot_llama.chat import encode_dialog
from polyglot_llama.evaluation.suite import EvalConfig, run
from polyglot_llama.evaluation.tasks import parse_task
from polyglot_llama.errors import UserError
from polyglot_llama.io import RejectCounter
from polyglot_llama.model.checkpoint import load_causal_lm, load_tokenizer

from eval_helpers import token_logprobs, write_jsonl
from polyglot_test_utils import make_tiny_model

BETA = 0.5
PAIRS = [
    {"lang": "en", "prompt": "Say hello.", "chosen": "Hello there.", "rejected": "Goodbye.", "strength": "better"},
    {"lang": "en", "prompt": "Name a colour.", "chosen": "Blue.", "rejected": "A table is wooden.", "strength": "significantly_better"},
    {"lang": "en", "prompt": "Count to three.", "chosen": "One, two, three.", "rejected": "Three.", "strength": "better"},
    {"lang": "ko", "prompt": "안녕하세요?", "chosen": "네, 안녕하세요.", "rejected": "Hello.", "strength": "significantly_better"},
    {"lang": "ko", "prompt": "고마워요.", "chosen": "천만에요.", "rejected": "No.", "strength": "better"},
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, multi_model_dir, multi_tokenizer_dir):
    root = tmp_path_factory.mktemp("preference")
    reference = make_tiny_model(multi_tokenizer_dir, root / "reference", seed=5)
    data = write_jsonl(root / "pairs.jsonl", PAIRS + [{"lang": "en", "prompt": "q", "chosen": "same", "rejected": "same"}])
    return root, reference, data


def _hand_logp(model, tokenizer, prompt: str, answer: str) -> float:
    ids, labels = encode_dialog([{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}], tokenizer)
    per_token = token_logprobs(model, ids)  # position t-1 predicts ids[t]
    return sum(lp for lp, label in zip(per_token, labels[1:]) if label != -100)


def _hand_kl(model, reference, tokenizer, pairs) -> float:
    total, count = 0.0, 0
    for pair in pairs:
        for answer in (pair["chosen"], pair["rejected"]):
            ids, labels = encode_dialog([{"role": "user", "content": pair["prompt"]}, {"role": "assistant", "content": answer}], tokenizer)
            with torch.no_grad():
                p = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), -1)
                q = torch.log_softmax(reference(torch.tensor([ids])).logits[0].double(), -1)
            for t in range(1, len(ids)):
                if labels[t] != -100:
                    total += float((p[t - 1].exp() * (p[t - 1] - q[t - 1])).sum())
                    count += 1
    return total / count


def test_preference_task_matches_a_hand_computation(setup, tiny_checkpoint, multi_model_dir, tmp_path):
    _, reference_dir, data = setup
    task = parse_task({"kind": "preference", "name": "prefs", "data": {"files": [str(data)]}, "reference": str(reference_dir),
                       "beta": BETA}, tmp_path / "suite.yaml", 0)
    rejects = RejectCounter()
    result = task.evaluate(tiny_checkpoint, rejects)

    tokenizer = load_tokenizer(multi_model_dir)
    policy, reference = load_causal_lm(multi_model_dir).eval(), load_causal_lm(reference_dir).eval()
    rewards = []
    for pair in PAIRS:
        c = BETA * (_hand_logp(policy, tokenizer, pair["prompt"], pair["chosen"]) - _hand_logp(reference, tokenizer, pair["prompt"], pair["chosen"]))
        r = BETA * (_hand_logp(policy, tokenizer, pair["prompt"], pair["rejected"]) - _hand_logp(reference, tokenizer, pair["prompt"], pair["rejected"]))
        rewards.append((pair["lang"], pair["strength"], c, r))
    assert rejects.by_reason() == {"identical chosen and rejected": 1}
    for lang in ("en", "ko"):
        mine = [(c, r) for lg, _, c, r in rewards if lg == lang]
        metrics = result["languages"][lang]
        assert metrics["outcomes"] == [int(c > r) for c, r in mine]
        assert metrics["n"] == len(mine) and metrics["accuracy"] == pytest.approx(sum(c > r for c, r in mine) / len(mine))
        assert metrics["margin"] == pytest.approx(sum(c - r for c, r in mine) / len(mine), abs=1e-4)
        assert metrics["chosen_reward"] == pytest.approx(sum(c for c, _ in mine) / len(mine), abs=1e-4)
        expected_kl = _hand_kl(policy, reference, tokenizer, [p for p in PAIRS if p["lang"] == lang])
        assert metrics["kl_to_reference"] == pytest.approx(expected_kl, rel=1e-3)
    assert any(c != pytest.approx(r, abs=1e-3) for _, _, c, r in rewards)  # the check is not trivially 0 = 0
    for label in ("better", "significantly_better"):
        mine = [(c, r) for _, s, c, r in rewards if s == label]
        stats = result["breakdowns"]["strength"][label]
        assert stats["n"] == len(mine) and stats["accuracy"] == pytest.approx(sum(c > r for c, r in mine) / len(mine))
        assert stats["ci_method"] == "wilson" and 0 <= stats["ci95"][0] <= stats["accuracy"] <= stats["ci95"][1] <= 1


def test_eval_report_shows_preference_accuracy_and_reference_scores_zero(setup, multi_model_dir):
    root, reference_dir, data = setup
    suite = root / "suite.yaml"
    suite.write_text(json.dumps({"name": "prefs", "tasks": [{"kind": "preference", "name": "dpo_pairs", "beta": BETA,
                                                             "reference": str(reference_dir), "data": {"files": [str(data)]}}]}))
    summary = run(EvalConfig(suite=str(suite), model=[str(multi_model_dir), str(reference_dir)], output=str(root / "eval"),
                             device="cpu", dtype="float32", batch_size=2))
    assert summary["failed"] == 0
    results = json.loads((root / "eval" / "results.json").read_text())
    by_model = results["tasks"][0]["results"]
    # The reference against itself: every implicit reward is 0, so no pair is ranked right and the KL is 0.
    for metrics in by_model["reference"]["languages"].values():
        assert metrics["outcomes"] == [0] * metrics["n"] and metrics["ci95"][1] == pytest.approx({3: 0.5615, 2: 0.6576}[metrics["n"]], abs=1e-4)
        assert metrics["accuracy"] == 0 and metrics["margin"] == 0 and metrics["kl_to_reference"] == pytest.approx(0, abs=1e-6)
    en = by_model["model"]["languages"]["en"]
    assert en["ci_method"] == "wilson" and en["n"] == 3
    report = (root / "eval" / "results.md").read_text()
    assert "## dpo_pairs (preference): accuracy, higher is better" in report and "By strength:" in report
    assert f"| en (English) | **{en['accuracy']:.4g}** [{en['ci95'][0]:.3g}, {en['ci95'][1]:.3g}] (n=3) |" in report
    assert f"- model, en: margin {en['margin']:.4g}" in report and "- reference, ko: margin 0 (chosen 0, rejected 0), KL to reference 0 nats/token" in report


@pytest.mark.parametrize("entry, message", [
    ({"data": {"files": ["p.jsonl"]}}, "key 'reference' is required"),
    ({"data": {"files": ["p.jsonl"]}, "reference": "ref", "beta": 0}, "key 'beta' is 0"),
    ({"reference": "ref"}, "key 'data' is required"),
])
def test_preference_task_config_errors_name_the_key(tmp_path, entry, message):
    with pytest.raises(UserError, match=message):
        parse_task({"kind": "preference", "name": "p", **entry}, tmp_path / "suite.yaml", 0)
