"""The first-batch DPO loss equals TRL's `DPOTrainer` on the same tiny model, reference and pairs (1e-5).

The reference is a differently seeded model, so the loss is not the trivial log 2 of policy == reference.
TRL tokenizes the conversations with the tokenizer's chat template (our Llama 2 template installed), so the
test also checks that our rows are token for token TRL's prompt + completion, with the same answer mask.
"""

import json
import random
import shutil

import pytest
import torch

from polyglot_llama.chat import install_chat_template
from polyglot_llama.io import RejectCounter
from polyglot_llama.model.checkpoint import load_causal_lm, load_tokenizer
from polyglot_llama.train import dpo_data
from polyglot_llama.train.dpo import DPOConfig, DPODataConfig, dpo_step, reference_pass
from polyglot_llama.train.reward_data import parse_pair

from polyglot_test_utils import make_tiny_model
from test_dpo import synthetic_pairs

trl = pytest.importorskip("trl")


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_first_batch_loss_matches_trl(multi_model_dir, multi_tokenizer_dir, tmp_path, loss_type):
    from datasets import Dataset

    tokenizer_dir = tmp_path / "tokenizer"
    shutil.copytree(multi_tokenizer_dir, tokenizer_dir)
    install_chat_template(tokenizer_dir)
    tokenizer = load_tokenizer(tokenizer_dir)
    reference_dir = make_tiny_model(multi_tokenizer_dir, tmp_path / "reference", seed=1)
    records = synthetic_pairs("train", 2, random.Random(3))  # 6 pairs, 3 languages

    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": r["prompt"]}],
                                  "chosen": [{"role": "assistant", "content": r["chosen"]}],
                                  "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in records])
    args = trl.DPOConfig(output_dir=str(tmp_path / "trl"), per_device_train_batch_size=len(records), beta=0.1,
                         loss_type=[loss_type], report_to="none", use_cpu=True, bf16=False, max_length=None)
    trainer = trl.DPOTrainer(model=load_causal_lm(multi_model_dir), ref_model=load_causal_lm(reference_dir), args=args,
                             train_dataset=dataset, processing_class=tokenizer)
    trl_rows = [trainer.train_dataset[i] for i in range(len(records))]
    trainer.model.train()
    with torch.no_grad():
        trl_loss = float(trainer.compute_loss(trainer.model, trainer.data_collator(trl_rows)))

    cfg = DPOConfig(model=str(multi_model_dir), output=str(tmp_path / "ours"), reference=str(reference_dir), loss=loss_type,
                    beta=0.1, tau=0.1, data=DPODataConfig(train=["unused"]))
    examples = dpo_data.encode_pairs([parse_pair(r, "test") for r in records], tokenizer, None, 10_000, "small", RejectCounter())
    for ours, theirs in zip(examples, trl_rows):
        assert ours["chosen_ids"] == theirs["prompt_ids"] + theirs["chosen_ids"]
        assert ours["rejected_ids"] == theirs["prompt_ids"] + theirs["rejected_ids"]
        assert [t for t, label in zip(ours["chosen_ids"], ours["chosen_labels"]) if label != -100] == theirs["chosen_ids"]
    reference_pass(cfg, examples, tokenizer.pad_token_id, tmp_path / "ours" / dpo_data.REFERENCE_CACHE)
    policy = load_causal_lm(multi_model_dir).train()
    with torch.no_grad():
        out = dpo_step(policy, dpo_data.collate([examples], tokenizer.pad_token_id), loss=loss_type, beta=0.1,
                       label_smoothing=0.0, tau=0.1, offset_scale=1.0)
    print(f"{loss_type}: ours {float(out.loss):.8f}, TRL {trl_loss:.8f}, |Δ| {abs(float(out.loss) - trl_loss):.2e}")
    assert abs(trl_loss - (0.6931471805599453 if loss_type == "sigmoid" else 25.0)) > 1e-3  # not the trivial value
    assert float(out.loss) == pytest.approx(trl_loss, abs=1e-5)
