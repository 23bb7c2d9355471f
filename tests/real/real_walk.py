"""The Korean walk-through on SmolLM2-135M-Instruct that the pipeline, SFT and eval tests share (one run per
session, see conftest.py): tokenizer extend → model extend → corpus mix → pretrain's two stages.

Text: the bundled parallel ko/en samples, paragraphs 1-40 to learn from, 41-60 held out.
"""

from __future__ import annotations

import json
from pathlib import Path

from polyglot_test_utils import sample_records

TRAIN = 40
HELD_OUT_CHARS = 200
INIT_STEPS = 48

SMOLLM_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"  # the template's default
CONVERSATIONS = [
    {"lang": "ko", "messages": [{"role": "user", "content": "한국의 수도는 어디인가요?"},
                                {"role": "assistant", "content": "한국의 수도는 서울입니다."}]},
    {"lang": "en", "messages": [{"role": "user", "content": "What is the capital of France?"},
                                {"role": "assistant", "content": "The capital of France is Paris."}]},
    {"lang": "ko", "messages": [{"role": "system", "content": "짧게 대답하세요."},
                                {"role": "user", "content": "안녕하세요?"},
                                {"role": "assistant", "content": "안녕하세요! 무엇을 도와드릴까요?"},
                                {"role": "user", "content": "고마워요."},
                                {"role": "assistant", "content": "천만에요."}]},
    {"lang": "en", "messages": [{"role": "user", "content": "Name a fruit."},
                                {"role": "assistant", "content": "An apple is a fruit."}]},
]


def write_jsonl(path: Path, records: list[dict]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return str(path)


def run_walk(smollm2_dir: Path, work: Path) -> dict:
    """SmolLM2 adapted to Korean: 300 new tokens, resized tied embeddings fitted for INIT_STEPS distill steps on the
    text the tokens were learnt from, a 75/25 ko/en mix, 6 new-rows steps
    and 2 all-weights steps of 16 x 32 tokens. Validation: the first 4 batches (16 rows of 32 tokens) of the
    held-out Korean; a checkpoint only at the end of each stage (three 539 MB files in all)."""
    from polyglot_llama.config import load_config
    from polyglot_llama.corpus.mix import MixConfig
    from polyglot_llama.corpus.mix import run as mix
    from polyglot_llama.model.extend import ModelExtendConfig
    from polyglot_llama.model.extend import run as extend_model
    from polyglot_llama.tokenizer.extend import TokenizerExtendConfig
    from polyglot_llama.tokenizer.extend import run as extend_tokenizer
    from polyglot_llama.train import pretrain

    ko, en = sample_records("ko"), sample_records("en")
    paths = {"ko_train": write_jsonl(work / "ko_train.jsonl", ko[:TRAIN]), "ko_val": write_jsonl(work / "ko_val.jsonl", ko[TRAIN:]),
             "en_train": write_jsonl(work / "en_train.jsonl", en[:TRAIN]), "en_val": write_jsonl(work / "en_val.jsonl", en[TRAIN:])}
    extend_tokenizer(TokenizerExtendConfig(base=str(smollm2_dir), input=[paths["ko_train"]], new_tokens=300,
                                           output=str(work / "tokenizer"), lang="ko"))
    # 48 distill steps, not the default 480 (~25 min here): test_real_extend_init.py pins the init's quality on this
    # same run; the rest of the walk checks the stages on a real checkpoint. The last rows, not the default mean over
    # the last half of the steps, as docs/tokenizer.md advises for a short fit (3.234 against 3.317 bits per byte)
    extended = extend_model(ModelExtendConfig(model=str(smollm2_dir), tokenizer=str(work / "tokenizer"),
                                              output=str(work / "extended"), eval_text=[paths["ko_val"], paths["en_val"]],
                                              eval_max_chars=HELD_OUT_CHARS, init_steps=INIT_STEPS, init_average_last=0.0))
    mix(load_config(MixConfig, overrides={
        "tokenizer": str(work / "tokenizer"), "output": str(work / "mix"), "total_tokens": 20_000,
        "sources": [{"name": "ko", "lang": "ko", "paths": [paths["ko_train"]]},
                    {"name": "en", "lang": "en", "paths": [paths["en_train"]]}],
        "replay.lang": "en", "replay.share": 0.25,
    }))
    trained = pretrain.run(load_config(pretrain.PretrainConfig, None, {
        "model": str(work / "extended"), "output": str(work / "cpt"),
        "data.train": [str(work / "mix" / "mixture" / "*.jsonl.gz")], "data.validation": [paths["ko_val"]],
        "data.seq_len": 32, "loop.micro_batch_size": 4, "loop.grad_accum": 4, "loop.log_every": 2,
        "loop.max_eval_batches": 4, "schedule.warmup_steps": 1,
        "stages": [{"name": "new-rows", "trainable": "new_embeddings", "steps": 6, "lr": 3e-3},
                   {"name": "all", "trainable": "all", "steps": 2, "lr": 1e-4}],
    }))
    return {"work": work, "extended": extended, "trained": trained,
            "ko_val": [r["text"][:HELD_OUT_CHARS] for r in ko[TRAIN:TRAIN + 8]]}


def run_sft(work: Path) -> dict:
    """Two SFT steps of the pretrained walk-through model (work/cpt) on CONVERSATIONS in its own ChatML
    template, one conversation per row, validated on the same conversations. Returns the summary and the
    rows `sft.run` handed to the training loop."""
    import pytest

    from polyglot_llama.config import from_dict
    from polyglot_llama.train import sft

    data = write_jsonl(work / "sft.jsonl", CONVERSATIONS)
    rows = []
    real_train = sft.train

    def recording_train(model, train_rows, *args, **kwargs):
        rows.extend(train_rows)
        return real_train(model, train_rows, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sft, "train", recording_train)
        summary = sft.run(from_dict(sft.SFTConfig, {
            "model": str(work / "cpt"), "output": str(work / "sft"), "batch_size": 0,
            "data": {"train": [data], "validation": [data], "seq_len": 128, "packing": False},
            "loop": {"max_steps": 2, "micro_batch_size": 4, "grad_accum": 1, "log_every": 1},
            "optim": {"lr": 1e-4, "weight_decay": 0.0},
            "schedule": {"kind": "constant", "warmup_steps": 0, "warmup_ratio": 0.0},
        }))
    return {"summary": summary, "rows": rows, "output": work / "sft", "model": work / "cpt"}
