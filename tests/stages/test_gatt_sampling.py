"""Ghost Attention's defining step, checked at the generator: `gatt build` samples every answer with the
instruction in *every* user turn so far, and saves the dialogue with the instruction in turn 1 only.

The generator is replaced by a recorder (fixed answers), so the test reads exactly the token ids the
builder hands to the model, decoded back to text."""

from __future__ import annotations

import json

from polyglot_llama import cli
from polyglot_llama.rlhf.generation import Generation

PROMPTS = [{"prompt": "What is tea?", "lang": "en"}, {"prompt": "Name a river.", "lang": "en"},
           {"prompt": "Why is the sky blue?", "lang": "en"}, {"prompt": "Tell me a joke.", "lang": "en"}]


def test_sampling_prompts_repeat_the_instruction_saved_data_does_not(tmp_path, en_model_dir, monkeypatch):
    import polyglot_llama.train.gatt as gatt

    calls = []

    def recording_generate(model, tok, prompts, sampling, seeds, model_path=None):
        calls.append([tok.decode(p) for p in prompts])
        return [Generation(p, [5, tok.eos_token_id], f"answer {len(calls)}", True) for p in prompts]

    monkeypatch.setattr(gatt, "generate", recording_generate)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS), encoding="utf-8")
    out = tmp_path / "gatt"
    assert cli.main(["gatt", "--model", str(en_model_dir), "--prompts", str(prompts), "--output", str(out),
                     "--dialogues", "4", "--min-turns", "3", "--max-turns", "3", "--seed", "1",
                     "--sampling.backend", "hf"]) == 0
    records = [json.loads(line) for line in (out / "gatt.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(records) == 4 and len(calls) == 3  # one batched call per turn, every dialogue in each
    instructions = [r["gatt"]["instruction"] for r in records]
    for turn, decoded in enumerate(calls):
        assert len(decoded) == 4
        for text, record in zip(decoded, records):
            instruction = record["gatt"]["instruction"]
            # turn t's prompt holds t + 1 user turns, each prefixed with the instruction
            assert text.count(instruction) == turn + 1, (turn, text)
            users = [m["content"] for m in record["messages"] if m["role"] == "user"][:turn + 1]
            assert all(u.split("\n\n")[-1] in text for u in users)
    for record, instruction in zip(records, instructions):
        users = [m["content"] for m in record["messages"] if m["role"] == "user"]
        assert users[0].startswith(instruction + "\n\n") and not any(instruction in u for u in users[1:])
        assert [m["content"] for m in record["messages"] if m["role"] == "assistant"] == ["answer 1", "answer 2", "answer 3"]
