"""DPO data: only the final answer is scored, length-sorted micro-batches, one-forward collation, the reference cache."""

import random

from polyglot_llama.io import RejectCounter
from polyglot_llama.model.checkpoint import load_tokenizer
from polyglot_llama.train import dpo_data
from polyglot_llama.train.reward_data import parse_pair


def _examples(tokenizer, n=3):
    records = [{"prompt": [{"role": "user", "content": "Hello there"}, {"role": "assistant", "content": "Hi, how can I help"},
                           {"role": "user", "content": "Name a colour" + " please" * i}],
                "chosen": "Blue", "rejected": "I do not know any colour", "strength": "better"} for i in range(n)]
    return dpo_data.encode_pairs([parse_pair(r, "test") for r in records], tokenizer, None, 10_000, "large", RejectCounter())


def test_only_the_final_answer_is_scored(en_tokenizer_dir):
    tokenizer = load_tokenizer(en_tokenizer_dir)
    example = _examples(tokenizer, 1)[0]
    scored = [t for t, label in zip(example["chosen_ids"], example["chosen_labels"]) if label != -100]
    # The final answer and its </s>, not the earlier "Hi, how can I help" nor any prompt token.
    assert tokenizer.decode(scored[:-1]).strip() == "Blue" and scored[-1] == tokenizer.eos_token_id
    assert example["offset"] == 2.0 and example["strength"] == "better"  # Llama 2 large table: better → 2


def test_overlong_pairs_are_counted_not_cut(en_tokenizer_dir):
    tokenizer = load_tokenizer(en_tokenizer_dir)
    rejects = RejectCounter()
    pairs = [parse_pair({"prompt": "q", "chosen": "short", "rejected": "long " * 50}, "test")]
    assert dpo_data.encode_pairs(pairs, tokenizer, None, 20, "small", rejects) == []
    assert list(rejects.by_reason()) == ["prompt + response longer than max_length 20"]


def test_length_groups_cover_everything_once_in_a_seeded_order():
    examples = [{"chosen_ids": [0] * n, "rejected_ids": [0] * (n % 7), "i": i} for i, n in enumerate(range(1, 101))]
    groups = dpo_data.length_grouped_batches(examples, 8, seed=3, window=5)
    assert sorted(e["i"] for g in groups for e in g) == list(range(100))
    assert [len(g) for g in groups] == [8] * 5 + [8] * 5 + [8, 8, 4]  # windows of 40 pairs: 40, 40, 20
    assert all([len(e["chosen_ids"]) for e in g] == sorted(len(e["chosen_ids"]) for e in g) for g in groups)
    def padding(batches):
        return sum(max(len(e["chosen_ids"]) for e in g) * len(g) - sum(len(e["chosen_ids"]) for e in g) for g in batches)

    shuffled = random.Random(3).sample(examples, len(examples))
    assert padding(groups) < padding([shuffled[k:k + 8] for k in range(0, 100, 8)]) / 3
    assert groups == dpo_data.length_grouped_batches(examples, 8, seed=3, window=5)
    assert groups != dpo_data.length_grouped_batches(examples, 8, seed=4, window=5)


def test_collate_puts_chosen_rows_first(en_tokenizer_dir):
    tokenizer = load_tokenizer(en_tokenizer_dir)
    examples = _examples(tokenizer)
    for e, (c, r) in zip(examples, [(-1.0, -2.0), (-3.0, -4.0), (-5.0, -6.0)]):
        e["ref_chosen"], e["ref_rejected"] = c, r
    batch = dpo_data.collate([examples[:2], examples[2:]], pad_id=0)
    assert batch["input_ids"].shape[0] == 6 and batch["labels"].shape == batch["input_ids"].shape
    for row, e in enumerate(examples):
        assert batch["input_ids"][row, :len(e["chosen_ids"])].tolist() == e["chosen_ids"]
        assert batch["input_ids"][row + 3, :len(e["rejected_ids"])].tolist() == e["rejected_ids"]
        assert (batch["labels"][row + 3, len(e["rejected_labels"]):] == -100).all()
    assert batch["ref_chosen"].tolist() == [-1.0, -3.0, -5.0] and batch["ref_rejected"].tolist() == [-2.0, -4.0, -6.0]
    assert batch["offset"].tolist() == [2.0, 2.0, 2.0]


def test_reference_cache_is_read_only_for_the_same_rows_and_weights(tmp_path, en_tokenizer_dir):
    tokenizer = load_tokenizer(en_tokenizer_dir)
    examples = _examples(tokenizer)
    reference = tmp_path / "ref"
    reference.mkdir()
    (reference / "model.safetensors").write_bytes(b"weights")
    key = dpo_data.fingerprint(examples, str(reference))
    cache = tmp_path / "cache.safetensors"
    dpo_data.write_reference_cache(cache, key, [-1.0, -2.0, -3.0], [-4.0, -5.0, -6.0])
    assert dpo_data.read_reference_cache(cache, key, 3) == ([-1.0, -2.0, -3.0], [-4.0, -5.0, -6.0])
    examples[0]["chosen_ids"] = examples[0]["chosen_ids"] + [5]
    assert dpo_data.read_reference_cache(cache, dpo_data.fingerprint(examples, str(reference)), 3) is None
    examples[0]["chosen_ids"] = examples[0]["chosen_ids"][:-1]
    (reference / "model.safetensors").write_bytes(b"other weights")
    assert dpo_data.read_reference_cache(cache, dpo_data.fingerprint(examples, str(reference)), 3) is None
