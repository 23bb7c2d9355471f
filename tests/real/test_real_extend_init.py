"""Issue 13 point 8 on the real SmolLM2-135M-Instruct: `model extend`'s distill init, reading all the text the
tokens were learnt from, leaves the Korean bits per byte far lower than subword-mean does; the issue's target of
2 % is not reached on this sample. English and the old rows are untouched.

The run is the walk-through's (`walk`, real_walk.py): 300 Korean tokens learnt on paragraphs 1-40 of the bundled
sample, which the distill init reads by default (all 78 chunks under the default init_max_tokens); bits per byte
on the first 8 held-out paragraphs 41-48, 200 characters each (docs/real-checkpoints.md). 48 fit steps and the last
rows, not the default 480 steps averaged over the last half, for a tenth of the time (the default: 2.651,
+8.8 %, in docs/tokenizer.md; ~25 min on one core). The
opt-in untied head (`--untie-head true`) was too close to the tied default to test on 8 paragraphs (3.725 against
3.740 on 15 chunks); its wiring is tests/unit/model/test_extend_model.py's.
"""

from __future__ import annotations

import json

import pytest
import torch
from real_walk import INIT_STEPS
from safetensors import safe_open


def test_distill_init_keeps_korean_near_the_original(walk):
    result = walk["extended"]
    assert result["init"] == "distill" and result["distill"]["steps"] == INIT_STEPS == 48
    assert "rows_averaged_from_step" not in result["distill"]  # --init-average-last 0: the last step's rows
    ko, en = result["bits_per_byte"]["ko"], result["bits_per_byte"]["en"]
    assert ko["before"] == pytest.approx(2.436, abs=0.01)  # the original model on the held-out Korean
    # Measured (docs/tokenizer.md): subword-mean 4.446 (+82.5 %); distill for 48 steps over the first 15 chunks
    # (init_max_tokens 2500, the default before) 3.740 (+53.5 %), over all 78 chunks 3.234 (+32.8 %)
    assert result["distill"]["documents"] == 78 and result["distill"]["documents_drawn"] < 78
    assert ko["after"] < 3.35
    # more than 2 % above the original: the summary line says so and what to do (en, +0.0 %, is not named)
    assert result["advice"].startswith(f"bits per byte rose more than 2 % (ko {ko['change']}): give --init-text")
    assert ko["change"].startswith("+3") and "en +" not in result["advice"]
    # English ids and rows are unchanged; the new rows, which English never reads, take a sliver of the head's
    # probability mass in English contexts (measured +0.01 %)
    assert en["after"] == pytest.approx(en["before"], rel=1e-3)


def test_old_rows_stay_bit_identical(walk, smollm2_dir):
    with safe_open(smollm2_dir / "model.safetensors", "pt") as f:
        old = f.get_tensor("model.embed_tokens.weight")
    with safe_open(walk["work"] / "extended" / "model.safetensors", "pt") as f:
        new = f.get_tensor("model.embed_tokens.weight")
        assert "lm_head.weight" not in f.keys()  # the head stays tied
    assert new.shape == (49152 + 8 + 300, 576)
    assert torch.equal(new[:49152], old)
    record = json.loads((walk["work"] / "extended" / "new_tokens.json").read_text())
    assert record["init"] == "distill" and record["new_token_ids"] == list(range(49152, 49460))
