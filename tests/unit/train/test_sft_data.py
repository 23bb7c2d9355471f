"""SFT data: record forms, rejects with reasons, masks, packing without leaks (checked on a real Llama forward)."""

from __future__ import annotations

import json

import pytest
import torch

from polyglot_llama.chat import IGNORE_INDEX, encode_dialog
from polyglot_llama.io import RejectCounter
from polyglot_llama.model.checkpoint import load_causal_lm, load_tokenizer
from polyglot_llama.train.data import causal_lm_step
from polyglot_llama.train.sft_data import (
    encode_conversations,
    load_conversations,
    make_collate,
    pack_examples,
    record_to_messages,
)

GOOD = {"messages": [{"role": "user", "content": "Name a color."}, {"role": "assistant", "content": "Blue."},
                     {"role": "user", "content": "Another?"}, {"role": "assistant", "content": "Red."}], "lang": "en"}


@pytest.fixture(scope="module")
def tokenizer(en_tokenizer_dir):
    return load_tokenizer(en_tokenizer_dir)


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


def test_bad_records_are_counted_with_reasons(tmp_path):
    records = [
        GOOD,
        {"prompt": "Hi", "response": "Hello.", "system": "Be kind.", "lang": "ko-KR"},
        {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": ""}]},
        {"messages": [{"role": "human", "content": "a"}, {"role": "assistant", "content": "b"}]},
        {"text": "no conversation"},
    ]
    path = write_jsonl(tmp_path / "d.jsonl", records)
    with open(path, "a") as f:
        f.write("{broken\n")
    rejects = RejectCounter()
    convs = load_conversations([path], rejects, default_lang="de")
    assert [(c.lang, c.record) for c in convs] == [("en", 1), ("ko", 2)]
    assert convs[1].messages[0] == {"role": "system", "content": "Be kind."}
    assert rejects.by_reason() == {"roles do not alternate": 1, "empty assistant turn": 1, "unknown role": 1,
                                   "malformed record": 1, "malformed JSON: Expecting property name enclosed in double quotes": 1}
    assert sorted(r["line"] for r in rejects.rejected) == [3, 4, 5, 6, 7]


def test_loss_turns_last_masks_earlier_turns_token_by_token(tokenizer):
    messages = record_to_messages({**GOOD, "loss_turns": "last"})
    ids, labels = encode_dialog(messages, tokenizer)
    enc = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    turn1 = enc("[INST] Name a color. [/INST] Blue. ")
    prompt2, answer2 = enc("[INST] Another? [/INST]"), enc("Red. ")
    assert ids == [1] + turn1 + [2] + [1] + prompt2 + answer2 + [2]
    assert labels == [IGNORE_INDEX] * (len(turn1) + 3 + len(prompt2)) + answer2 + [2]
    with pytest.raises(Exception, match="nothing to learn"):
        record_to_messages({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "train": False}]})


def test_overlong_truncate_or_drop(tokenizer, tmp_path):
    long = {"prompt": "word " * 50, "response": "Yes."}
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD, long])
    convs = load_conversations([path], RejectCounter())
    full = len(encode_dialog(convs[0].messages, tokenizer)[0])

    rejects = RejectCounter()
    examples, stats = encode_conversations(convs, tokenizer, seq_len=full, rejects=rejects, overlong="drop")
    assert len(examples) == 1 and rejects.by_reason() == {f"longer than seq_len ({full} tokens)": 1}

    rejects = RejectCounter()
    examples, stats = encode_conversations(convs, tokenizer, seq_len=full, rejects=rejects, overlong="truncate")
    # The long prompt fills the window before its answer starts: nothing left to learn, so rejected.
    assert stats.truncated == 1 and len(examples) == 1
    assert rejects.by_reason() == {f"no answer token within seq_len ({full} tokens)": 1}
    examples, stats = encode_conversations(convs[:1], tokenizer, seq_len=full - 3, rejects=RejectCounter())
    assert stats.truncated == 1 and len(examples[0]["input_ids"]) == full - 3


def test_best_fit_packing_respects_seq_len():
    lengths = [7, 5, 4, 3, 3, 2, 1]
    examples = [{"input_ids": [1] + [5] * (n - 1), "labels": [IGNORE_INDEX] + [5] * (n - 1), "lang": "en"} for n in lengths]
    rows = pack_examples(examples, seq_len=8)
    # Longest first, each into the row with the least room that fits: 25 tokens in 4 rows of 8 (the minimum).
    assert [r["lengths"] for r in rows] == [[7, 1], [5, 3], [4, 3], [2]]
    for row in rows:
        assert row["position_ids"] == [p for n in row["lengths"] for p in range(n)]
        starts = [sum(row["lengths"][:k]) for k in range(len(row["lengths"]))]
        assert all(row["labels"][s] == IGNORE_INDEX for s in starts)
    assert len(pack_examples(examples, seq_len=8, packing=False)) == len(lengths)


def test_packed_logits_equal_each_conversation_alone(tokenizer, en_model_dir):
    """No attention across conversations or padding: a packed, padded row gives each conversation's logits."""
    model = load_causal_lm(en_model_dir).eval()
    dialogs = [GOOD["messages"], [{"role": "user", "content": "What is two plus two?"}, {"role": "assistant", "content": "Four."}]]
    examples = [dict(zip(("input_ids", "labels"), encode_dialog(m, tokenizer)), lang="en") for m in dialogs]
    total = sum(len(e["input_ids"]) for e in examples)
    (packed,) = pack_examples(examples, seq_len=total)
    short = pack_examples(examples[1:], seq_len=total)[0]
    batch = make_collate(tokenizer.eos_token_id)([packed, short])  # the second row is padded
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
        offset = 0
        for n in packed["lengths"]:
            ids = torch.tensor([packed["input_ids"][offset:offset + n]])
            alone = model(input_ids=ids, use_cache=False).logits[0]
            torch.testing.assert_close(logits[0, offset:offset + n], alone, atol=1e-5, rtol=1e-4)
            offset += n
        n = short["lengths"][0]
        alone = model(input_ids=torch.tensor([short["input_ids"]]), use_cache=False).logits[0]
        torch.testing.assert_close(logits[1, :n], alone, atol=1e-5, rtol=1e-4)
        assert torch.isfinite(logits).all()
        # Without the position runs (one long causal sequence) the second conversation does see the first.
        leaky = model(input_ids=batch["input_ids"][:1], use_cache=False).logits[0]
        first = packed["lengths"][0]
        assert not torch.allclose(leaky[first:total], logits[0, first:total], atol=1e-4)

        # The packed loss is exactly the token-weighted mean of the conversations' losses.
        out = causal_lm_step(model, {k: v[:1] for k, v in batch.items()})
        assert out.n_tokens == sum(sum(label != IGNORE_INDEX for label in e["labels"][1:]) for e in examples)
        parts = [causal_lm_step(model, make_collate(2)([pack_examples([e], total)[0]])) for e in examples]
        expected = sum(float(p.loss) * p.n_tokens for p in parts) / sum(p.n_tokens for p in parts)
        assert abs(float(out.loss) - expected) < 1e-5
