import torch

from polyglot_llama.train.freezing import TrainStageConfig, prepare_stage


def _step(model, plan, lr=0.1):
    optimizer = torch.optim.AdamW(plan.params, lr=lr, weight_decay=0.1)
    ids = torch.tensor([[1, 5, 300, 301, 2]])
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    plan.before_optimizer_step(model)
    grad = model.get_input_embeddings().weight.grad
    # Old rows get no gradient before clipping and the step: the clipped norm is the new rows' norm.
    assert grad[:300].abs().sum() == 0 and grad[302:].abs().sum() == 0 and grad[300:302].abs().sum() > 0
    optimizer.step()
    plan.after_optimizer_step(model)


def test_new_embeddings_stage_keeps_old_rows_and_body_bit_identical(en_model_dir):
    from polyglot_llama.model.checkpoint import load_causal_lm

    model = load_causal_lm(en_model_dir)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    new_ids = [300, 301]
    plan = prepare_stage(model, TrainStageConfig(trainable="new_embeddings"), new_ids)
    for _ in range(3):
        _step(model, plan)
    after = model.state_dict()
    for name, tensor in after.items():
        if name in ("model.embed_tokens.weight", "lm_head.weight"):
            old = [i for i in range(tensor.shape[0]) if i not in new_ids]
            assert torch.equal(tensor[old], before[name][old]), name
            assert not torch.equal(tensor[new_ids], before[name][new_ids]), name
        else:
            assert torch.equal(tensor, before[name]), name
    plan.finish(model)
    all_plan = prepare_stage(model, TrainStageConfig(trainable="all"), new_ids)
    ids = torch.tensor([[1, 5, 6, 2]])
    model(input_ids=ids, labels=ids).loss.backward()
    # After finish() the row mask is gone: old rows receive gradients again.
    assert model.get_input_embeddings().weight.grad[5].abs().sum() > 0
    assert len(all_plan.params) == len(list(model.parameters()))
