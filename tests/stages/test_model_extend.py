"""End to end: English base tokenizer -> extended with Korean -> tiny model extended -> runs on Korean."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer

from polyglot_llama.cli import main
from polyglot_llama.model.checkpoint import load_causal_lm

SAMPLE = Path(__file__).resolve().parents[2] / "polyglot_llama" / "resources" / "sample_text"


def test_extend_tokenizer_and_model_then_run_on_korean(en_tokenizer_dir, en_model_dir, tmp_path, capsys):
    assert main(["tokenizer", "extend", "--base", str(en_tokenizer_dir), "--input", str(SAMPLE / "ko.jsonl"),
                 "--new-tokens", "500", "--output", str(tmp_path / "tok")]) == 0
    capsys.readouterr()
    assert main(["model", "extend", "--model", str(en_model_dir), "--tokenizer", str(tmp_path / "tok"),
                 "--init", "subword-mean", "--pad-to-multiple-of", "64", "--output", str(tmp_path / "model")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["embedding_rows"] == 1024 and summary["new_tokens"] == 500

    korean = [json.loads(line)["text"] for line in (SAMPLE / "ko.jsonl").read_text(encoding="utf-8").splitlines()]
    old_tok = Tokenizer.from_file(str(en_tokenizer_dir / "tokenizer.json"))
    new_tok = AutoTokenizer.from_pretrained(tmp_path / "model")
    before = sum(len(old_tok.encode(t).ids) for t in korean)
    after = sum(len(new_tok(t)["input_ids"]) for t in korean)
    assert after <= before / 2, (before, after)

    # New rows are the mean of the rows of the pieces the old tokenizer splits each new token into.
    old_model, new_model = load_causal_lm(en_model_dir), load_causal_lm(tmp_path / "model")
    record = json.loads((tmp_path / "model" / "new_tokens.json").read_text())
    assert record["old_vocab_size"] == 512 and record["new_token_ids"] == list(range(512, 1012))
    emb_old, emb_new = old_model.get_input_embeddings().weight, new_model.get_input_embeddings().weight
    head_old, head_new = old_model.lm_head.weight, new_model.lm_head.weight
    assert torch.equal(emb_new[:512], emb_old) and torch.equal(head_new[:512], head_old)
    checked = 0
    for i in record["new_token_ids"]:
        old_ids = old_tok.encode(new_tok.decode([i]).lstrip(" "), add_special_tokens=False).ids
        piece = new_tok.convert_ids_to_tokens(i)
        if not piece.startswith("▁"):  # the old encoder adds "▁" in front of any text: drop it
            old_ids = old_ids[1:] if old_tok.id_to_token(old_ids[0]) == "▁" else None
        if old_ids:
            assert torch.allclose(emb_new[i], emb_old[old_ids].mean(0), atol=1e-6), piece
            assert torch.allclose(head_new[i], head_old[old_ids].mean(0), atol=1e-6), piece
            checked += 1
    assert checked > 450

    # The extended model runs on Korean: a forward pass with a finite loss and a few generated tokens.
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    batch = new_tok(korean[0], return_tensors="pt", truncation=True, max_length=64)
    assert batch["input_ids"].max().item() >= 512
    loss = model(**batch, labels=batch["input_ids"]).loss
    assert torch.isfinite(loss) and abs(loss.item() - torch.log(torch.tensor(1024.0)).item()) < 1.5
    generated = model.generate(**batch, max_new_tokens=5, do_sample=False)
    assert generated.shape[1] == batch["input_ids"].shape[1] + 5


def test_vocab_mismatch_is_one_line(multi_model_dir, tmp_path, en_tokenizer_dir, capsys):
    assert main(["tokenizer", "extend", "--base", str(en_tokenizer_dir), "--input", str(SAMPLE / "ko.jsonl"),
                 "--new-tokens", "50", "--output", str(tmp_path / "tok")]) == 0
    capsys.readouterr()
    code = main(["model", "extend", "--model", str(multi_model_dir), "--tokenizer", str(tmp_path / "tok"),
                 "--output", str(tmp_path / "model")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "does not extend the model's tokenizer" in err[0]
