"""`polyglot-llama gatt` end to end on a tiny model: build on a fixed seed, train with `sft`, evaluate per turn."""

from __future__ import annotations

import json

from polyglot_llama import cli
from polyglot_llama.chat import IGNORE_INDEX, encode_dialog
from polyglot_llama.corpus.lid import load_lid_model, predict_language
from polyglot_llama.io import RejectCounter
from polyglot_llama.model.checkpoint import load_tokenizer
from polyglot_llama.train.sft_data import load_conversations

PROMPTS = [{"prompt": "What is tea?", "lang": "en"}, {"prompt": "Name a river.", "lang": "en"},
           {"prompt": "Why is the sky blue?", "lang": "en"}, {"prompt": "Tell me a joke.", "lang": "en"},
           {"prompt": "차는 무엇인가요?", "lang": "ko"}, {"prompt": "강 이름을 말해 주세요.", "lang": "ko"},
           {"prompt": "하늘은 왜 파란가요?", "lang": "ko"}, {"text": ""}]


def instruction_in(dialogue, message) -> bool:
    return dialogue["gatt"]["instruction"] in message["content"]


def gatt(tmp_path, model_dir, prompts, name, *extra):
    args = ["gatt", "--model", str(model_dir), "--prompts", str(prompts), "--output", str(tmp_path / name),
            "--dialogues", "8", "--min-turns", "2", "--max-turns", "3", "--seed", "7",
            "--sampling.max-new-tokens", "6", "--sampling.temperature", "1.0", "--sampling.backend", "hf", *extra]
    assert cli.main(args) == 0
    return tmp_path / name


def test_gatt_build_train_and_eval(tmp_path, multi_model_dir, one_thread, monkeypatch):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in PROMPTS), encoding="utf-8")
    out = gatt(tmp_path, multi_model_dir, prompts, "gatt")
    lines = (out / "gatt.jsonl").read_text(encoding="utf-8").splitlines()
    # Same seed, same data: dialogue composition, instructions and sampled answers are reproducible.
    assert lines == (gatt(tmp_path, multi_model_dir, prompts, "again") / "gatt.jsonl").read_text(encoding="utf-8").splitlines()
    summary = json.loads((out / "gatt_build_summary.json").read_text())
    assert summary["rejected"] == {"no prompt": 1}

    # Interrupted during turn 2, then rerun: it resumes after turn 1 and writes the same data.
    import polyglot_llama.train.gatt as gatt_module

    real_generate, calls, interrupt = gatt_module.generate, [], [True]

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2 and interrupt:
            interrupt.pop()
            raise KeyboardInterrupt
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(gatt_module, "generate", interrupted)
    args = ["gatt", "--model", str(multi_model_dir), "--prompts", str(prompts), "--output", str(tmp_path / "resumed"),
            "--dialogues", "8", "--min-turns", "2", "--max-turns", "3", "--seed", "7",
            "--sampling.max-new-tokens", "6", "--sampling.temperature", "1.0", "--sampling.backend", "hf"]
    assert cli.main(args) == 130
    assert json.loads((tmp_path / "resumed" / "gatt_build_progress.json").read_text())["turns_done"] == 1
    calls.clear()
    assert cli.main(args) == 0 and len(calls) == 2  # turns 2 and 3 only
    assert (tmp_path / "resumed" / "gatt.jsonl").read_text(encoding="utf-8").splitlines() == lines
    assert not (tmp_path / "resumed" / "gatt_build_progress.json").exists()
    monkeypatch.setattr(gatt_module, "generate", real_generate)

    records = [json.loads(line) for line in lines]
    assert 1 <= len(records) <= 8 and summary["dialogues"] == len(records)
    source = {p.get("prompt") for p in PROMPTS}
    tokenizer = load_tokenizer(multi_model_dir)
    for record in records:
        instruction, messages = record["gatt"]["instruction"], record["messages"]
        users = [m["content"] for m in messages if m["role"] == "user"]
        assert 2 <= len(users) == record["gatt"]["turns"] <= 3 and record["loss_turns"] == "last"
        # The instruction only in turn 1; later user turns are the plain prompts, in the dialogue's language.
        assert users[0].startswith(instruction + "\n\n") and users[0][len(instruction) + 2:] in source
        assert all(instruction not in u for u in users[1:]) and set(users[1:]) <= source
        assert all(instruction not in m["content"] for m in messages if m["role"] == "assistant")
        assert record["gatt"]["instruction_lang"] == record["lang"]
        for part in record["gatt"]["constraints"]:
            assert part["value"] in instruction
        assert all(m["content"].strip() for m in messages if m["role"] == "assistant")

    # sft reads the records with loss on the last answer only.
    convs = load_conversations([str(out / "gatt.jsonl")], RejectCounter())
    assert len(convs) == len(records)
    ids, labels = encode_dialog(convs[0].messages, tokenizer)
    last_bos = max(i for i, t in enumerate(ids) if t == tokenizer.bos_token_id)
    assert all(label == IGNORE_INDEX for label in labels[:last_bos])
    assert any(label != IGNORE_INDEX for label in labels[last_bos:])
    assert cli.main(["sft", "--model", str(multi_model_dir), "--output", str(tmp_path / "sft"), "--data.train",
                     str(out / "gatt.jsonl"), "--data.seq-len", "512", "--data.validation-fraction", "0",
                     "--batch-size", "0", "--loop.max-steps", "2", "--loop.micro-batch-size", "1"]) == 0

    # require_language: dialogues whose answers are not in the requested language are dropped and counted.
    filtered = gatt(tmp_path, multi_model_dir, prompts, "filtered", "--require-language", "true")
    kept = [json.loads(line) for line in (filtered / "gatt.jsonl").read_text(encoding="utf-8").splitlines()]
    dropped = json.loads((filtered / "gatt_build_summary.json").read_text())["rejected"].get("answer not in the requested language", 0)
    assert len(kept) + dropped == len(records) and dropped >= 1
    lid = load_lid_model()
    for record in kept:
        for part in record["gatt"]["constraints"]:
            if "answer_lang" in part:
                answers = [m["content"] for m in record["messages"] if m["role"] == "assistant"]
                assert all(predict_language(lid, a)[0] == part["answer_lang"] for a in answers)

    # eval: instruction in turn 1 only, every dialogue runs max_turns turns, language judged by LID.
    ev = gatt(tmp_path, multi_model_dir, prompts, "eval", "--mode", "eval")
    result = json.loads((ev / "gatt_eval_summary.json").read_text())
    assert [row["turn"] for row in result["per_turn"]] == [1, 2, 3]
    dialogues = [json.loads(line) for line in (ev / "gatt_eval_dialogues.jsonl").read_text(encoding="utf-8").splitlines()]
    n_language = sum("answer_lang" in p for d in dialogues for p in d["gatt"]["constraints"])
    assert all(sum(instruction_in(d, m) for m in d["messages"]) == 1 for d in dialogues)
    assert result["per_turn"][0]["language"]["answers"] == n_language
    assert "| 1 |" in (ev / "gatt_eval.md").read_text(encoding="utf-8")
