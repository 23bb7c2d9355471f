"""Issue 13 point 8 on the real SmolLM2-135M-Instruct: `model extend`'s distill init, reading all the text the
tokens were learnt from, leaves the Korean bits per byte far lower than subword-mean does; the issue's target of
2 % is not reached. English and the old rows are untouched.

300 Korean tokens learnt on paragraphs 1-40 of the bundled sample (the distill init reads the same text: all of
its 78 chunks under the default init_max_tokens), bits per byte on the first 8 held-out paragraphs 41-48, 200
characters each (docs/real-checkpoints.md). 48 fit steps, not the default 240, for a fifth
of the time (240 steps: 2.769, +13.7 %, in docs/tokenizer.md; ~10 min on one core). The opt-in untied head
(`--untie-head true`) was too close to the tied default to test on 8 paragraphs (3.725 against 3.740 on 15
chunks); its wiring is tests/unit/model/test_extend_model.py's.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from polyglot_test_utils import sample_records, write_jsonl
from polyglot_llama.model.extend import ModelExtendConfig, run as extend_model
from polyglot_llama.tokenizer.extend import TokenizerExtendConfig, run as extend_tokenizer

TRAIN = 40


def _extend(smollm2_dir, work, **init) -> dict:
    ko, en = sample_records("ko"), sample_records("en")
    ko_train = write_jsonl(work / "ko_train.jsonl", ko[:TRAIN])
    extend_tokenizer(TokenizerExtendConfig(base=str(smollm2_dir), input=[ko_train], new_tokens=300, lang="ko",
                                           output=str(work / "tok")))
    result = extend_model(ModelExtendConfig(
        model=str(smollm2_dir), tokenizer=str(work / "tok"), output=str(work / "ext"), init_text=[ko_train],
        eval_text=[write_jsonl(work / "ko_val.jsonl", ko[TRAIN:]), write_jsonl(work / "en_val.jsonl", en[TRAIN:])],
        eval_max_records=8, eval_max_chars=200, init_steps=48, **init))
    return {"work": work, "result": result}


@pytest.fixture(scope="module")
def distilled(smollm2_dir, tmp_path_factory) -> dict:
    return _extend(smollm2_dir, tmp_path_factory.mktemp("smollm2_distill"))


def test_distill_init_keeps_korean_near_the_original(distilled):
    result = distilled["result"]
    assert result["init"] == "distill" and result["distill"]["documents"] >= 8
    ko, en = result["bits_per_byte"]["ko"], result["bits_per_byte"]["en"]
    assert ko["before"] == pytest.approx(2.436, abs=0.01)  # the original model on the held-out Korean
    # Measured (docs/tokenizer.md): subword-mean 4.446 (+82.5 %); distill for 48 steps over the first 15 chunks
    # (init_max_tokens 2500, the default before) 3.740 (+53.5 %), over all 78 chunks 3.234 (+32.8 %)
    assert result["distill"]["documents"] == 78 and result["distill"]["documents_drawn"] < 78
    assert ko["after"] < 3.35
    # English ids and rows are unchanged; the new rows, which English never reads, take a sliver of the head's
    # probability mass in English contexts (measured +0.01 %)
    assert en["after"] == pytest.approx(en["before"], rel=1e-3)


def test_old_rows_stay_bit_identical(distilled, smollm2_dir):
    with safe_open(smollm2_dir / "model.safetensors", "pt") as f:
        old = f.get_tensor("model.embed_tokens.weight")
    with safe_open(distilled["work"] / "ext" / "model.safetensors", "pt") as f:
        new = f.get_tensor("model.embed_tokens.weight")
        assert "lm_head.weight" not in f.keys()  # the head stays tied
    assert new.shape == (49152 + 8 + 300, 576)
    assert torch.equal(new[:49152], old)
    record = json.loads((distilled["work"] / "ext" / "new_tokens.json").read_text())
    assert record["init"] == "distill" and record["new_token_ids"] == list(range(49152, 49460))
