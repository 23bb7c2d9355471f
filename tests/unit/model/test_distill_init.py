"""The distill initialisation: span alignment, the soft target (hand-computed), and the fit on a tiny model."""

from __future__ import annotations

import math

import pytest
import torch

from polyglot_llama.model.distill_init import align_spans, distill_new_rows, distillation_loss
from polyglot_llama.model.extend import ModelExtendConfig, run
from polyglot_llama.model.checkpoint import load_causal_lm

PIECES = {10: [1, 2], 11: [3, 4, 5]}  # new id -> the old ids it stands for


def pieces_of(i: int) -> list[int]:
    return PIECES.get(i, [i]) if i >= 10 else [i]


def test_align_spans_maps_each_new_token_to_its_old_tokens():
    assert align_spans([7, 1, 2, 3, 4, 5, 1], [7, 10, 11, 1], pieces_of) == [(0, 1), (1, 3), (3, 6), (6, 7)]
    assert align_spans([7, 1, 3], [7, 10], pieces_of) is None  # 10 is 1 2, the text has 1 3
    assert align_spans([7, 1, 2, 9], [7, 10], pieces_of) is None  # old ids left over
    assert align_spans([7], [7, 12], lambda i: [] if i == 12 else [i]) is None  # a token without a spelling


def test_distillation_loss_moves_the_spelling_mass_from_first_piece_to_new_token():
    # 2 old tokens, 1 new (id 2). Position 0: next is the new token, p_old(spelling) = 0.3, first piece 0:
    # target [0.6 - 0.3, 0.4, 0.3]; loss = -(0.3 ln 0.5 + 0.4 ln 0.25 + 0.3 ln 0.25) = 1.1783503.
    # Position 1: next is old token 1, target = teacher [0.6, 0.4]: -(0.6 ln 0.5 + 0.4 ln 0.25) = 0.9704061.
    student = torch.tensor([[0.5, 0.25, 0.25], [0.5, 0.25, 0.25]]).log()
    teacher = torch.tensor([[0.6, 0.4], [0.6, 0.4]])
    spelling = torch.tensor([math.log(0.3), -math.inf])
    loss = distillation_loss(student, teacher, spelling, torch.tensor([0, 0]), torch.tensor([2, 1]))
    assert loss.item() == pytest.approx((1.1783503 + 0.9704061) / 2, abs=1e-6)


def _tiny_pair(en_model_dir):
    """The tiny English model resized by 2 rows: id V = pieces (5, 6), id V + 1 = pieces (7, 8, 9)."""
    model = load_causal_lm(en_model_dir)
    old_size = model.get_input_embeddings().weight.shape[0]
    model.resize_token_embeddings(old_size + 2, mean_resizing=False)
    spell = {old_size: [5, 6], old_size + 1: [7, 8, 9]}
    with torch.no_grad():
        for i, ids in spell.items():
            model.get_input_embeddings().weight[i] = model.get_input_embeddings().weight[ids].mean(0)
            model.get_output_embeddings().weight[i] = model.get_output_embeddings().weight[ids].mean(0)
    return model, old_size, spell


def test_distill_fits_only_new_rows_and_lowers_the_loss(en_model_dir):
    model, old_size, spell = _tiny_pair(en_model_dir)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    new = [old_size, old_size + 1]
    old_ids = [20, 5, 6, 30, 7, 8, 9, 5, 6, 40] * 3
    new_ids = [20, new[0], 30, new[1], new[0], 40] * 3
    documents = [(old_ids, new_ids)] * 2 + [([5, 7], [new[0]])]  # the last does not align and is skipped
    summary = distill_new_rows(model, old_size, new, documents, lambda i: spell.get(i, [i]), 1, steps=15, lr=0.05,
                               batch_documents=2, generator=torch.Generator().manual_seed(0))
    assert summary["documents"] == 2 and summary["positions"] == 36 and summary["loss_last"] < summary["loss_first"] - 0.003
    after = model.state_dict()
    for key, value in before.items():
        if key.endswith(("embed_tokens.weight", "lm_head.weight")):
            assert torch.equal(after[key][:old_size], value[:old_size]), key  # old rows bit-identical
            assert not torch.equal(after[key][old_size:], value[old_size:]), key  # new rows fitted
        else:
            assert torch.equal(after[key], value), key  # the body is not trained
    assert all(p.requires_grad for p in model.parameters())  # the caller's flags are restored


def test_model_extend_distills_by_default(en_model_dir, en_tokenizer_dir, tmp_path):
    from polyglot_test_utils import write_jsonl
    from polyglot_llama.tokenizer.extend import TokenizerExtendConfig, run as extend_tokenizer

    text = write_jsonl(tmp_path / "ko.jsonl", [{"text": "바닷가 마을에서는 해가 뜨기 전에 배가 나간다. " * 6}] * 3)
    extend_tokenizer(TokenizerExtendConfig(base=str(en_tokenizer_dir), input=[text], new_tokens=20, output=str(tmp_path / "tok")))
    result = run(ModelExtendConfig(model=str(en_model_dir), tokenizer=str(tmp_path / "tok"), output=str(tmp_path / "out"),
                                   init_text=[text], init_steps=3))
    assert result["init"] == "distill" and result["distill"]["documents"] == 3 and result["distill"]["steps"] == 3
    spelled = run(ModelExtendConfig(model=str(en_model_dir), tokenizer=str(tmp_path / "tok"), output=str(tmp_path / "sp"),
                                    init_steps=2))
    assert spelled["distill"]["documents"] == 1  # 20 spellings, 32 to a document
