"""The distill initialisation: span alignment, the soft target (hand-computed), and the fit on a tiny model."""

from __future__ import annotations

import pytest
import torch

from polyglot_llama.model.distill_init import align_spans, distill_new_rows, distillation_loss, hidden_state_loss
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


def test_distillation_loss_is_next_token_cross_entropy_plus_teacher_odds_among_old_tokens():
    # 2 old tokens, 1 new (id 2); student q = [0.5, 0.25, 0.25], among old tokens [2/3, 1/3]; teacher [0.6, 0.4].
    # Teacher term: -(0.6 ln 2/3 + 0.4 ln 1/3) = 0.6827240. Next tokens 2 and 0: -ln 0.25 = 1.3862944, -ln 0.5 = 0.6931472.
    student = torch.tensor([[0.5, 0.25, 0.25], [0.5, 0.25, 0.25]]).log()
    teacher = torch.tensor([[0.6, 0.4], [0.6, 0.4]])
    next_ids = torch.tensor([2, 0])
    loss = distillation_loss(student, teacher, next_ids, teacher_weight=1.0)
    assert loss.item() == pytest.approx((1.3862944 + 0.6931472) / 2 + 0.6827240, abs=1e-6)
    half = distillation_loss(student, teacher, next_ids, teacher_weight=0.5)
    assert half.item() == pytest.approx((1.3862944 + 0.6931472) / 2 + 0.5 * 0.6827240, abs=1e-6)


def test_hidden_state_loss_is_the_per_layer_relative_squared_error_averaged_over_layers():
    # Layer 1: teacher (3, 4) |.|² 25, student (3, 0): 16 / 25 = 0.64. Layer 2: teacher (1, 0), student (0, 0): 1.
    teacher = torch.tensor([[[3.0, 4.0]], [[1.0, 0.0]]])
    student = torch.tensor([[[3.0, 0.0]], [[0.0, 0.0]]])
    assert hidden_state_loss(student, teacher).item() == pytest.approx((0.64 + 1.0) / 2, abs=1e-6)
    assert hidden_state_loss(teacher, teacher).item() == 0.0
    # Two positions in one layer: the sums run over positions before dividing, (1 + 0) / (1 + 4) = 0.2.
    assert hidden_state_loss(torch.tensor([[[0.0], [2.0]]]), torch.tensor([[[1.0], [2.0]]])).item() == pytest.approx(0.2)


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
    # 3 records of 162 characters: 2 chunks each (init_chunk_chars 150)
    result = run(ModelExtendConfig(model=str(en_model_dir), tokenizer=str(tmp_path / "tok"), output=str(tmp_path / "out"),
                                   init_text=[text], init_steps=3))
    assert result["init"] == "distill" and result["distill"]["documents"] == 6 and result["distill"]["steps"] == 3
    assert result["distill"]["rows_averaged_from_step"] == 2  # the last half of 3 steps, rounded up: steps 2 and 3
    # Without --init-text: the text tokenizer extend learnt from (its resolved config), else the spellings.
    default = run(ModelExtendConfig(model=str(en_model_dir), tokenizer=str(tmp_path / "tok"), output=str(tmp_path / "d"),
                                    init_steps=2))
    assert default["distill"]["text"] == text and default["distill"]["documents"] == 6
    (tmp_path / "tok" / "tokenizer_extend.config.yaml").unlink()
    spelled = run(ModelExtendConfig(model=str(en_model_dir), tokenizer=str(tmp_path / "tok"), output=str(tmp_path / "sp"),
                                    init_steps=2))
    assert spelled["distill"]["text"] == "the new tokens' spellings" and spelled["distill"]["documents"] == 1  # 20 tokens


def test_teacher_state_is_the_original_model_after_the_old_tokens_before_each_new_token(en_model_dir):
    from polyglot_llama.model.distill_init import _Document

    model, old_size, spell = _tiny_pair(en_model_dir)
    old_ids, new_ids = [20, 5, 6, 30, 7, 8, 9], [20, old_size, 30, old_size + 1]
    with torch.no_grad():
        spans = align_spans(old_ids, new_ids, lambda i: spell.get(i, [i]))
        doc = _Document(model, 1, old_ids, new_ids, spans, True)
        # Without the hidden-state term the layers are not kept (30 x the memory of the rest on SmolLM2)
        lean = _Document(model, 1, old_ids, new_ids, spans, False)
        assert lean.teacher_layers is None and torch.equal(lean.teacher_hidden, doc.teacher_hidden)
        # New token j starts at old position s (0, 1, 3, 4): the teacher has read the context id 1 and old_ids[:s].
        for j, s in enumerate([0, 1, 3, 4]):
            prefix = torch.tensor([[1] + old_ids[:s]])
            assert torch.allclose(doc.teacher_hidden[j], model.base_model(input_ids=prefix).last_hidden_state[0, -1], atol=1e-5)
        # After reading new token j the student should hold what the teacher holds after its last old piece
        # (span ends e = 1, 3, 4, 7), in every layer.
        layers = model.config.num_hidden_layers
        assert doc.teacher_layers.shape == (layers, 4, model.config.hidden_size)
        for j, e in enumerate([1, 3, 4, 7]):
            states = model.base_model(input_ids=torch.tensor([[1] + old_ids[:e]]), output_hidden_states=True).hidden_states
            for k in range(layers):
                assert torch.allclose(doc.teacher_layers[k, j], states[k + 1][0, -1], atol=1e-5), (j, k)
    assert doc.student_in.tolist() == [[1] + new_ids] and doc.next_ids.tolist() == new_ids


def test_the_hidden_state_term_moves_the_rows(en_model_dir):
    rows = {}
    for weight in (0.0, 1.0):
        model, old_size, spell = _tiny_pair(en_model_dir)
        documents = [([20, 5, 6, 30, 7, 8, 9, 40] * 2, [20, old_size, 30, old_size + 1, 40] * 2)]
        summary = distill_new_rows(model, old_size, [old_size, old_size + 1], documents, lambda i: spell.get(i, [i]), 1,
                                   steps=3, lr=0.05, batch_documents=1, generator=torch.Generator().manual_seed(0),
                                   hidden_weight=weight)
        rows[weight] = (model.get_input_embeddings().weight[old_size:].clone(), summary["loss_first"])
    assert not torch.allclose(rows[0.0][0], rows[1.0][0])
    assert rows[1.0][1] > rows[0.0][1]  # the first loss includes the (positive) hidden-state term


def test_without_eval_text_the_report_scores_init_text_records_the_fit_never_reads(en_model_dir, en_tokenizer_dir, tmp_path):
    from tokenizers import Tokenizer

    from polyglot_test_utils import write_jsonl
    from polyglot_llama.model.bits_per_byte import bits_per_byte
    from polyglot_llama.tokenizer.extend import TokenizerExtendConfig, run as extend_tokenizer

    records = [{"text": f"{k}번째 글: 바닷가 마을에서는 해가 뜨기 전에 배가 나간다."} for k in range(8)]
    text = write_jsonl(tmp_path / "ko.jsonl", records)
    extend_tokenizer(TokenizerExtendConfig(base=str(en_tokenizer_dir), input=[text], new_tokens=20, lang="ko",
                                           output=str(tmp_path / "tok")))
    # A budget of 1 old token: the fit reads the first record's one chunk; records 2-4 are held out.
    result = run(ModelExtendConfig(model=str(en_model_dir), tokenizer=str(tmp_path / "tok"), output=str(tmp_path / "out"),
                                   init_max_tokens=1, init_steps=1, eval_max_records=3))
    assert result["distill"]["documents"] == 1
    assert list(result["bits_per_byte"]) == ["ko"]  # the language tokenizer extend was given
    assert result["bits_per_byte_text"] == f"3 records of {text} after those the distill init reads"
    original = load_causal_lm(en_model_dir)
    old = Tokenizer.from_file(str(en_tokenizer_dir / "tokenizer.json"))
    expected = bits_per_byte(original, old, [r["text"] for r in records[1:4]], 400)
    assert result["bits_per_byte"]["ko"]["before"] == pytest.approx(expected, abs=1e-4)


def test_the_teacher_reads_only_the_texts_a_step_draws(en_model_dir):
    """The teacher's pass (a forward of the whole model) is made for a text when a step first draws it: one step of
    2 out of 10 texts reads 2, a long init text costs what the steps use."""
    model, old_size, spell = _tiny_pair(en_model_dir)
    documents = [([20 + k, 5, 6, 30], [20 + k, old_size, 30]) for k in range(10)]
    summary = distill_new_rows(model, old_size, [old_size, old_size + 1], documents, lambda i: spell.get(i, [i]), 1,
                               steps=1, lr=0.01, batch_documents=2, generator=torch.Generator().manual_seed(0))
    assert (summary["documents"], summary["positions"], summary["documents_drawn"]) == (10, 30, 2)


def test_averaged_rows_are_the_mean_of_the_last_steps_rows(en_model_dir):
    """average_from 3 of 5 steps keeps the mean of the rows after steps 3, 4 and 5, each taken here from a separate
    fit of that many steps (same seed, so the same trajectory), in both matrices of an untied model."""
    def fit(steps: int, average_from: int = 0):
        model, old_size, spell = _tiny_pair(en_model_dir)
        documents = [([20, 5, 6, 30, 7, 8, 9, 40] * 2, [20, old_size, 30, old_size + 1, 40] * 2)]
        summary = distill_new_rows(model, old_size, [old_size, old_size + 1], documents, lambda i: spell.get(i, [i]), 1,
                                   steps=steps, lr=0.05, batch_documents=1, generator=torch.Generator().manual_seed(0),
                                   average_from=average_from)
        head = model.get_output_embeddings().weight
        assert head is not model.get_input_embeddings().weight  # the tiny model is untied: both matrices are fitted
        return [w[old_size:].detach().clone() for w in (model.get_input_embeddings().weight, head)], summary

    last = [fit(k)[0] for k in (3, 4, 5)]
    averaged, summary = fit(5, average_from=3)
    assert summary["rows_averaged_from_step"] == 3
    for k in range(2):
        assert not torch.allclose(last[0][k], last[2][k])  # the rows move between the steps averaged
        assert torch.allclose(averaged[k], (last[0][k] + last[1][k] + last[2][k]) / 3, atol=1e-6)
    unaveraged, summary = fit(5)
    assert "rows_averaged_from_step" not in summary and all(torch.equal(u, l) for u, l in zip(unaveraged, last[2]))
