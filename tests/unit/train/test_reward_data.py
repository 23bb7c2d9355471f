"""Preference pairs: record forms, labels, counted rejects, per-RM mixtures, tokenisation and collation."""

import json

import pytest
import torch

from polyglot_llama.errors import UserError
from polyglot_llama.io import RejectCounter
from polyglot_llama.model.checkpoint import load_tokenizer
from polyglot_llama.model.reward_model import encode_conversation
from polyglot_llama.train.reward_data import (MixSource, PairRejected, PreferencePair, collate_pairs, encode_pairs,
                                              load_pairs, mix_pairs, parse_pair, split_validation)


def test_explicit_prompt_forms():
    pair = parse_pair({"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go away.", "lang": "kor", "strength": "Significantly Better"}, "f: 1")
    assert pair.prompt == [{"role": "user", "content": "Hi?"}] and (pair.chosen, pair.rejected) == ("Hello.", "Go away.")
    assert pair.lang == "ko" and pair.strength == "significantly_better" and not pair.is_safety
    conversational = parse_pair({"prompt": [{"role": "user", "content": "Hi?"}],
                                 "chosen": [{"role": "assistant", "content": "Hello."}],
                                 "rejected": [{"role": "assistant", "content": "Bye."}], "strength": "unsure"}, "f: 2")
    assert conversational.chosen == "Hello." and conversational.strength == "negligibly_better"


def test_full_transcript_messages_share_the_prompt():
    turns = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Q1"},
             {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2"}]
    pair = parse_pair({"chosen": turns + [{"role": "assistant", "content": "good"}],
                       "rejected": turns + [{"role": "assistant", "content": "bad"}]}, "f: 1")
    assert pair.prompt == turns and (pair.chosen, pair.rejected) == ("good", "bad")
    changed = [dict(m) for m in turns]
    changed[1]["content"] = "other question"
    with pytest.raises(PairRejected, match="differ before the final answer"):
        parse_pair({"chosen": turns + [{"role": "assistant", "content": "good"}],
                    "rejected": changed + [{"role": "assistant", "content": "bad"}]}, "f: 1")


def test_anthropic_hh_strings():
    record = {"chosen": "\n\nHuman: How do I bake bread?\n\nAssistant: Knead, rest, bake.\n\nHuman: How long?\n\nAssistant: About 40 minutes.",
              "rejected": "\n\nHuman: How do I bake bread?\n\nAssistant: Knead, rest, bake.\n\nHuman: How long?\n\nAssistant: Buy it."}
    pair = parse_pair(record, "hh: 1", default_lang="en")
    assert pair.prompt == [{"role": "user", "content": "How do I bake bread?"}, {"role": "assistant", "content": "Knead, rest, bake."},
                           {"role": "user", "content": "How long?"}]
    assert (pair.chosen, pair.rejected, pair.lang) == ("About 40 minutes.", "Buy it.", "en")


@pytest.mark.parametrize("record, reason", [
    ({"prompt": "q", "chosen": "same", "rejected": " same "}, "identical chosen and rejected"),
    ({"prompt": "q", "chosen": "a"}, "missing field 'rejected'"),
    ({"prompt": "q", "chosen": 3, "rejected": "b"}, "non-string 'chosen'"),
    ({"prompt": "q", "chosen": "  ", "rejected": "b"}, "empty response"),
    ({"chosen": "no markers", "rejected": "none"}, "no prompt"),
    ({"prompt": "q", "chosen": "a", "rejected": "b", "lang": "not a code!"}, "bad language code"),
])
def test_unusable_records_are_rejected_with_a_reason(record, reason):
    with pytest.raises(PairRejected, match=reason):
        parse_pair(record, "f: 1")


def test_unknown_labels_are_errors_naming_allowed_ones():
    with pytest.raises(UserError, match=r"f\.jsonl: record 7: unknown strength label 'much better'; allowed: significantly_better, better, slightly_better, negligibly_better"):
        parse_pair({"prompt": "q", "chosen": "a", "rejected": "b", "strength": "much better"}, "f.jsonl: record 7")
    with pytest.raises(UserError, match="unknown safety_label 'meh'; allowed: both_safe, chosen_only_safe, both_unsafe"):
        parse_pair({"prompt": "q", "chosen": "a", "rejected": "b", "safety_label": "meh"}, "f: 1")


def test_safety_tags():
    assert parse_pair({"prompt": "q", "chosen": "a", "rejected": "b", "safety_label": "Both Unsafe"}, "f: 1").is_safety
    assert parse_pair({"prompt": "q", "chosen": "a", "rejected": "b"}, "f: 1", default_is_safety=True).is_safety
    assert not parse_pair({"prompt": "q", "chosen": "a", "rejected": "b", "is_safety": False}, "f: 1", default_is_safety=True).is_safety


def test_load_pairs_counts_rejects(tmp_path):
    path = tmp_path / "pairs.jsonl"
    lines = [json.dumps({"prompt": "q1", "chosen": "a", "rejected": "b"}), "{not json",
             json.dumps({"prompt": "q2", "chosen": "x", "rejected": "x"}), json.dumps({"prompt": "q3", "chosen": "c", "rejected": "d"})]
    path.write_text("\n".join(lines) + "\n")
    rejects = RejectCounter()
    pairs = load_pairs([str(path)], rejects, source="helpful", default_lang="de")
    assert [p.prompt[0]["content"] for p in pairs] == ["q1", "q3"] and {p.lang for p in pairs} == {"de"}
    assert pairs[1].file == str(path) and pairs[1].source == "helpful"
    assert rejects.by_reason() == {"malformed JSON: Expecting property name enclosed in double quotes": 1, "identical chosen and rejected": 1}


def _pairs(n, source, lang="en"):
    return [PreferencePair(prompt=[{"role": "user", "content": f"{source}{i}"}], chosen="a", rejected="b", lang=lang, source=source)
            for i in range(n)]


def test_mixture_safety_rm_90_10_and_helpfulness_rm_equal_part():
    safety, helpful = _pairs(90, "safe"), _pairs(200, "help")
    mixture, summary = mix_pairs(safety, [(MixSource(files=["h"], share=0.1, name="helpful"), helpful)], seed=0)
    assert len(mixture) == 100 and summary["helpful"]["used"] == 10 and summary["primary"]["share"] == pytest.approx(0.9)
    assert sum(p.source == "safe" for p in mixture) == 90
    mixture, summary = mix_pairs(helpful, [(MixSource(files=["s"], share=0.5, name="safety+open"), _pairs(500, "safe"))], seed=0)
    assert summary["safety+open"]["used"] == 200 and len(mixture) == 400
    # Too few pairs in a source: all of them, reported, never repeated.
    mixture, summary = mix_pairs(helpful, [(MixSource(files=["s"], share=0.5, name="small"), _pairs(30, "safe"))], seed=0)
    assert summary["small"] == {"available": 30, "wanted": 200, "used": 30, "share": pytest.approx(30 / 230)}
    with pytest.raises(UserError, match="sum to"):
        mix_pairs(helpful, [(MixSource(files=["s"], share=0.6), []), (MixSource(files=["t"], share=0.5), [])], seed=0)


def test_validation_split_per_language():
    pairs = _pairs(40, "e", "en") + _pairs(10, "k", "ko") + _pairs(1, "j", "ja")
    train, validation = split_validation(pairs, 0.1, seed=0)
    langs = [p.lang for p in validation]
    assert langs.count("en") == 4 and langs.count("ko") == 1 and langs.count("ja") == 0
    assert len(train) + len(validation) == 51 and not {id(p) for p in train} & {id(p) for p in validation}


def test_encode_and_collate(en_tokenizer_dir):
    tokenizer = load_tokenizer(en_tokenizer_dir)
    tokenizer.pad_token = tokenizer.unk_token
    pairs = [PreferencePair(prompt=[{"role": "user", "content": "Is the fog thick?"}], chosen="Yes, very thick today.",
                            rejected="No.", strength="better", lang="en", file="f", record=1),
             PreferencePair(prompt=[{"role": "user", "content": "word " * 60}], chosen="ok", rejected="no", file="f", record=2),
             PreferencePair(prompt=[{"role": "user", "content": "Hi"}], chosen="Hello!", rejected="Hey.", file="f", record=3)]
    rejects = RejectCounter()
    examples = encode_pairs(pairs, tokenizer, max_length=40, margin_table="large", rejects=rejects)
    assert [e["margin"] for e in examples] == [2.0, 0.0] and examples[1]["strength"] == "unlabelled"
    assert rejects.rejected[0]["line"] == 2 and rejects.rejected[0]["reason"] == "prompt longer than max_length 40"
    too_long_answer = PreferencePair(prompt=[{"role": "user", "content": "Hi"}], chosen="word " * 60, rejected="no", file="f", record=4)
    assert encode_pairs([too_long_answer], tokenizer, 40, "large", rejects) == []
    assert rejects.rejected[1]["reason"] == "prompt + response longer than max_length 40"
    assert examples[0]["chosen_ids"] == encode_conversation("Is the fog thick?", "Yes, very thick today.", tokenizer)
    batch = collate_pairs(examples, tokenizer.pad_token_id)
    lengths = [len(e["chosen_ids"]) for e in examples] + [len(e["rejected_ids"]) for e in examples]
    assert batch["input_ids"].shape == (4, max(lengths)) and batch["attention_mask"].sum(1).tolist() == lengths
    assert batch["input_ids"][1, :lengths[1]].tolist() == examples[1]["chosen_ids"]
    assert batch["input_ids"][2, :lengths[2]].tolist() == examples[0]["rejected_ids"]
    assert torch.equal(batch["margin"], torch.tensor([2.0, 0.0]))


def test_reward_config_mixture_and_holdout(tmp_path):
    from polyglot_llama.train.reward import RewardConfig, RewardDataConfig, _load_mixture

    safety = tmp_path / "safety.jsonl"
    helpful = tmp_path / "helpful.jsonl"
    safety.write_text("".join(json.dumps({"prompt": f"s{i}", "chosen": "a", "rejected": "b", "lang": "ko"}) + "\n" for i in range(90)))
    helpful.write_text("".join(json.dumps({"prompt": f"h{i}", "chosen": "a", "rejected": "b", "lang": "en"}) + "\n" for i in range(50)))
    cfg = RewardConfig(model="m", output=str(tmp_path / "out"), kind="safety", data=RewardDataConfig(
        train=[str(safety)], is_safety=True, validation_fraction=0.1,
        mix=[MixSource(files=[str(helpful)], share=0.1, name="helpfulness")]))
    train, validation, summary = _load_mixture(cfg, RejectCounter())
    assert summary["primary"]["used"] == 90 and summary["helpfulness"]["used"] == 10
    everything = train + validation
    assert len(everything) == 100 and len(validation) == 10          # 10 % of each language: 9 ko + 1 en
    assert sum(p.is_safety for p in everything) == 90 and all(p.is_safety == (p.lang == "ko") for p in everything)
    assert sorted(p.lang for p in validation) == ["en"] + ["ko"] * 9


@pytest.mark.parametrize("section", ["reward", "dpo"])
@pytest.mark.parametrize(("overrides", "message"), [
    ({"train": []}, "key 'data.train' is required"),
    ({"validation_fraction": 1.0}, "key 'data.validation_fraction' is 1.0; it must be in [0, 1)"),
    ({"max_length": -1}, "key 'data.max_length' is -1; give a token count or 0 for the model's context"),
])
def test_reward_and_dpo_data_sections_refuse_the_same_bad_values(section, overrides, message):
    from polyglot_llama.train.dpo import DPODataConfig
    from polyglot_llama.train.reward import RewardDataConfig

    config = RewardDataConfig if section == "reward" else DPODataConfig
    with pytest.raises(UserError) as error:
        config(**{"train": ["pairs.jsonl"], **overrides})
    assert str(error.value).startswith(message)
