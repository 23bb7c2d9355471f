"""`sft` on the Korean-adapted SmolLM2-135M-Instruct (the walk-through's pretrained model, conftest.py) in its
own ChatML template: rows token for token as `apply_chat_template`, the loss on exactly the assistant answers
and their `<|im_end|>`, loss falling, the tied head saved once. Issue 13 ("SFT with the model's own template").

Four short conversations (real_walk.CONVERSATIONS: Korean and English, one with a system turn and two
answers), one row each, two steps of all four (the `sft_run` fixture, conftest.py).
"""

from __future__ import annotations

import json

from real_walk import CONVERSATIONS, SMOLLM_SYSTEM
from safetensors import safe_open
from transformers import AutoTokenizer

from polyglot_llama.model.checkpoint import load_causal_lm

IM_START, IM_END = 1, 2  # SmolLM2's <|im_start|> and <|im_end|>
ASSISTANT_HEADER = [IM_START, 520, 9531, 198]  # "<|im_start|>" "ass" "istant" "\n"


def chatml(messages: list[dict]) -> str:
    """SmolLM2's template written out by hand: a default system turn when the conversation has none."""
    turns = messages if messages[0]["role"] == "system" else [{"role": "system", "content": SMOLLM_SYSTEM}, *messages]
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in turns)


def test_rows_are_the_models_chatml_rendering(sft_run):
    tokenizer = AutoTokenizer.from_pretrained(sft_run["model"])
    rows = sft_run["rows"]
    assert len(rows) == len(CONVERSATIONS)  # one conversation per row, in file order (packing off)
    for row, conv in zip(rows, CONVERSATIONS):
        assert row["input_ids"] == tokenizer.apply_chat_template(conv["messages"], tokenize=True, return_dict=True)["input_ids"]
        assert tokenizer.decode(row["input_ids"]) == chatml(conv["messages"])


def test_loss_mask_is_exactly_the_assistant_answers(sft_run):
    tokenizer = AutoTokenizer.from_pretrained(sft_run["model"])
    for row, conv in zip(sft_run["rows"], CONVERSATIONS):
        ids, labels = row["input_ids"], row["labels"]
        # Expected: after each "<|im_start|>assistant\n", every token through the next <|im_end|>.
        expected = set()
        for start in range(len(ids)):
            if ids[start:start + 4] == ASSISTANT_HEADER:
                end = ids.index(IM_END, start + 4)
                expected |= set(range(start + 4, end + 1))
        learned = {t for t, label in enumerate(labels) if label != -100}
        assert learned == expected
        assert all(labels[t] == ids[t] for t in learned)
        answers = [m["content"] for m in conv["messages"] if m["role"] == "assistant"]
        spans = tokenizer.decode([ids[t] for t in sorted(learned)])
        assert spans == "".join(a + "<|im_end|>" for a in answers)


def test_training_lowers_the_loss_and_keeps_the_head_tied(sft_run):
    summary, output = sft_run["summary"], sft_run["output"]
    assert summary["steps"] == 2 and summary["rows"] == 4
    for lang in ("ko", "en"):  # validation = the training conversations: memorising them lowers the loss
        assert summary["eval"][lang]["loss"] < summary["eval_before"][lang]["loss"] - 0.1, lang
    losses = [json.loads(line)["loss"] for line in (output / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 2 and losses[-1] < losses[0]
    with safe_open(output / "model.safetensors", "pt") as f:
        assert "lm_head.weight" not in f.keys()
    assert (output / "model.safetensors").stat().st_size < 560e6  # one copy of the 49,460 x 576 matrix
    model = load_causal_lm(output)
    assert model.lm_head.weight is model.get_input_embeddings().weight
    assert AutoTokenizer.from_pretrained(output).chat_template == AutoTokenizer.from_pretrained(sft_run["model"]).chat_template
