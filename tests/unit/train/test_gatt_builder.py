"""Ghost Attention: constraint lists, instruction sampling, where the instruction goes, the loss mask, per-turn rates."""

from __future__ import annotations

import json
import random

import pytest

from polyglot_llama.chat import IGNORE_INDEX, encode_dialog
from polyglot_llama.errors import UserError
from polyglot_llama.model.checkpoint import load_tokenizer
from polyglot_llama.train.gatt import (
    Dialogue,
    Instruction,
    deployed_messages,
    follow_rates,
    language_followed,
    load_constraints,
    sample_instruction,
    sampling_messages,
    training_record,
)
from polyglot_llama.train.sft_data import record_to_messages

LANGS = ("en", "de", "ko", "ja", "zh", "ru", "ar", "hi")


def test_bundled_lists_cover_every_category_in_every_language():
    constraints = load_constraints()
    assert set(constraints) == {"hobby", "language", "figure"}
    for category in constraints.values():
        for lang in LANGS:
            assert "{value}" in category["templates"][lang]["full"] and category["values"][lang]
    assert {"text": "Korean", "answer_lang": "ko"} in constraints["language"]["values"]["en"]
    assert {"text": "영어", "answer_lang": "en"} in constraints["language"]["values"]["ko"]


def test_user_lists_extend_and_bad_lists_are_named(tmp_path):
    (tmp_path / "hobby.json").write_text(json.dumps({"values": {"en": ["kite flying"]},
                                                     "templates": {"fr": {"full": "Tu aimes {value}.", "short": "Passe-temps : {value}"}}}))
    constraints = load_constraints([str(tmp_path)])
    assert constraints["hobby"]["values"]["en"][-1] == {"text": "kite flying"}
    assert "tennis" in [v["text"] for v in constraints["hobby"]["values"]["en"]]
    assert constraints["hobby"]["templates"]["fr"]["full"] == "Tu aimes {value}."
    (tmp_path / "hobby.json").write_text(json.dumps({"templates": {"en": {"full": "no placeholder", "short": "x {value}"}}}))
    with pytest.raises(UserError, match="hobby.json"):
        load_constraints([str(tmp_path)])


def test_instruction_sampling_is_seeded_combined_and_half_short():
    constraints = load_constraints()
    first = sample_instruction(constraints, "en", random.Random(3), max_constraints=3)
    assert first == sample_instruction(constraints, "en", random.Random(3), max_constraints=3)
    rng = random.Random(0)
    samples = [sample_instruction(constraints, "ko", rng, max_constraints=2) for _ in range(400)]
    assert 0.4 < sum(s.short for s in samples) / len(samples) < 0.6
    assert {len(s.parts) for s in samples} == {1, 2}
    for s in samples:
        assert len({p["category"] for p in s.parts}) == len(s.parts)  # different categories
        assert all(p["value"] in s.text for p in s.parts)
        assert s.lang == "ko"
    short = next(s for s in samples if s.short and s.parts[0]["category"] == "figure")
    assert short.text.startswith("인물: ")
    language = next(s for s in samples if any(p["category"] == "language" for p in s.parts))
    assert all("answer_lang" in p for p in language.parts if p["category"] == "language")
    requested = {p["answer_lang"] for s in samples for p in s.parts if "answer_lang" in p}
    assert "ko" not in requested and {"en", "ja", "zh"} <= requested  # never the prompt's own language
    # A language without templates falls back to English.
    assert sample_instruction(constraints, "xx", random.Random(1)).lang == "en"


INST = Instruction("Always answer in Korean.", "en", False, [{"category": "language", "value": "Korean", "answer_lang": "ko"}])
USERS = ["What is tea?", "And coffee?", "Which is better?"]
ANSWERS = ["차는 음료입니다.", "커피도 음료입니다.", "둘 다 좋습니다."]


def test_instruction_in_every_turn_for_sampling_only_first_for_training():
    sampled = sampling_messages(INST.text, USERS, ANSWERS[:2])
    assert [m["content"] for m in sampled if m["role"] == "user"] == [f"{INST.text}\n\n{u}" for u in USERS]
    assert sampled[-1]["role"] == "user"

    record = training_record(Dialogue(0, "en", USERS, INST, ANSWERS), "first_turn")
    users = [m["content"] for m in record["messages"] if m["role"] == "user"]
    assert users == [f"{INST.text}\n\n{USERS[0]}", USERS[1], USERS[2]]
    assert sum(INST.text in m["content"] for m in record["messages"]) == 1
    assert record["loss_turns"] == "last" and record["gatt"]["constraints"] == INST.parts

    system = deployed_messages(INST.text, USERS, ANSWERS, "system")
    assert system[0] == {"role": "system", "content": INST.text}
    assert [m["content"] for m in system if m["role"] == "user"] == USERS


def test_gatt_record_learns_only_the_last_turn(en_tokenizer_dir):
    tokenizer = load_tokenizer(en_tokenizer_dir)
    record = training_record(Dialogue(0, "en", USERS, INST, ANSWERS), "first_turn")
    ids, labels = encode_dialog(record_to_messages(record), tokenizer)
    last_bos = max(i for i, t in enumerate(ids) if t == tokenizer.bos_token_id)
    assert all(label == IGNORE_INDEX for label in labels[:last_bos])  # earlier turns, answers included
    enc = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    prompt, answer = enc(f"[INST] {USERS[2]} [/INST]"), enc(f"{ANSWERS[2]} ")
    assert ids[last_bos:] == [1] + prompt + answer + [2]
    assert labels[last_bos:] == [IGNORE_INDEX] * (1 + len(prompt)) + answer + [2]


def test_follow_rates_per_turn_hand_counted():
    hobby = Instruction("You enjoy tennis.", "en", False, [{"category": "hobby", "value": "tennis"}])
    both = Instruction("x", "en", True, [{"category": "language", "value": "German", "answer_lang": "de"},
                                         {"category": "figure", "value": "Napoleon"}])
    dialogues = [
        Dialogue(0, "en", USERS, INST, ["ko text", "en text", "ko text"]),
        Dialogue(1, "en", USERS[:2], both, ["de text, said Napoleon", "en text"]),
        Dialogue(2, "en", USERS[:1], hobby, ["I love Tennis"]),
    ]
    predict = lambda text: text.split()[0]  # noqa: E731  (the fake LID reads the first word)
    table = follow_rates(dialogues, predict)
    assert [row["turn"] for row in table] == [1, 2, 3]
    assert table[0]["language"] == {"answers": 2, "followed": 2, "rate": 1.0}
    assert table[0]["mention"] == {"answers": 2, "followed": 2, "rate": 1.0}
    assert table[1]["language"] == {"answers": 2, "followed": 0, "rate": 0.0}
    assert table[1]["mention"] == {"answers": 1, "followed": 0, "rate": 0.0}
    assert table[2]["language"] == {"answers": 1, "followed": 1, "rate": 1.0}
    assert table[2]["mention"] == {"answers": 0, "followed": 0, "rate": None}


def test_language_filter_needs_every_answer_in_the_requested_language():
    predict = lambda text: text.split()[0]  # noqa: E731
    assert language_followed(Dialogue(0, "en", USERS, INST, ["ko a", "ko b"]), predict)
    assert not language_followed(Dialogue(0, "en", USERS, INST, ["ko a", "en b"]), predict)
    hobby = Instruction("You enjoy tennis.", "en", False, [{"category": "hobby", "value": "tennis"}])
    assert language_followed(Dialogue(0, "en", USERS, hobby, ["en a"]), predict)


def test_sampling_stops_dialogues_that_outgrow_the_context(monkeypatch, en_tokenizer_dir):
    import polyglot_llama.train.gatt as gatt
    from polyglot_llama.rlhf.generation import Generation, SamplingConfig

    tokenizer = load_tokenizer(en_tokenizer_dir)
    calls = []

    def fake_generate(model, tok, prompts, sampling, seeds, model_path=None):
        calls.append((prompts, seeds))
        return [Generation(p, [5, 2], "ok", True) for p in prompts]

    class Model:
        class config:
            max_position_embeddings = 125  # turn 3 of dialogue 0 fits (113 + 8), turn 2 of dialogue 1 does not

    monkeypatch.setattr(gatt, "generate", fake_generate)
    dialogues = [Dialogue(0, "en", ["hi", "yo", "hm"], INST), Dialogue(1, "en", ["hi " * 30, "yo"], INST)]
    prompt = lambda d, t: sampling_messages(d.instruction.text, d.users[:t + 1], d.answers)  # noqa: E731
    gatt.sample_answers(dialogues, Model(), tokenizer, None, SamplingConfig(max_new_tokens=8), 0, prompt)
    assert dialogues[1].failed == "longer than the model context (125 tokens)" and dialogues[1].answers == ["ok"]
    assert dialogues[0].failed == "" and dialogues[0].answers == ["ok", "ok", "ok"]
    assert [len(p) for p, _ in calls] == [2, 1, 1]
    # Seeds depend on (seed, dialogue, turn) only.
    assert calls[0][1] == [gatt.derive_seed(0, "answer", 0, 0), gatt.derive_seed(0, "answer", 1, 0)]
    assert calls[2][1] == [gatt.derive_seed(0, "answer", 0, 2)]
