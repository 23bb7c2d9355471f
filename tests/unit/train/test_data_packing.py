import torch

from polyglot_llama.train.data import build_packed_dataset, collate_packed, pack_ids
from polyglot_llama.train.losses import IGNORE_INDEX


def test_pack_ids_layout_with_document_masking():
    rows = pack_ids([[5, 6, 7], [8, 9]], seq_len=4, bos_id=1, eos_id=2, document_masking=True)
    assert [r["input_ids"] for r in rows] == [[1, 5, 6, 7], [2, 1, 8, 9], [2, 2, 2, 2]]
    assert [r["position_ids"] for r in rows] == [[0, 1, 2, 3], [0, 0, 1, 2], [0, 0, 1, 2]]
    assert rows[1]["labels"] == [2, IGNORE_INDEX, 8, 9]  # the second document's <s> is not a target
    assert rows[2]["labels"] == [2, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]  # padding carries no loss


def test_pack_ids_without_masking_keeps_plain_positions():
    rows = pack_ids([[5, 6, 7], [8, 9]], seq_len=4, bos_id=1, eos_id=2, document_masking=False)
    assert rows[1]["position_ids"] == [0, 1, 2, 3] and rows[1]["labels"] == [2, 1, 8, 9]


def test_no_attention_across_documents(en_model_dir):
    """Logits of a document inside a packed row equal its logits alone."""
    from polyglot_llama.model.checkpoint import load_causal_lm

    model = load_causal_lm(en_model_dir).eval()
    doc_a, doc_b = [1, 40, 41, 42, 2], [1, 50, 51, 2]
    packed = torch.tensor([doc_a + doc_b])
    positions = torch.tensor([list(range(5)) + list(range(4))])
    with torch.no_grad():
        together = model(input_ids=packed, position_ids=positions, use_cache=False).logits
        alone = model(input_ids=torch.tensor([doc_b]), use_cache=False).logits
        leaky = model(input_ids=packed, use_cache=False).logits
    assert torch.allclose(together[0, 5:], alone[0], atol=1e-5)
    assert not torch.allclose(leaky[0, 5:], alone[0], atol=1e-3)


def test_build_packed_dataset_per_language_and_cache(tmp_path, en_tokenizer_dir):
    from polyglot_llama.model.checkpoint import load_tokenizer

    tokenizer = load_tokenizer(en_tokenizer_dir)
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "hello world", "lang": "en"}\n{"text": "hallo welt", "lang": "deu"}\nnot json\n')
    ds = build_packed_dataset(str(corpus), tokenizer, 16, cache_dir=tmp_path / "cache", rejects_file=tmp_path / "rej.jsonl")
    assert sorted(ds.unique("lang")) == ["de", "en"]  # languages normalised, packed separately
    assert "malformed JSON" in (tmp_path / "rej.jsonl").read_text()
    assert len(list((tmp_path / "cache").iterdir())) == 1
    again = build_packed_dataset(str(corpus), tokenizer, 16, cache_dir=tmp_path / "cache")
    assert again["input_ids"] == ds["input_ids"]
    batch = collate_packed([ds[0], ds[1]])
    assert batch["input_ids"].shape == (2, 16) and batch["labels"].dtype == torch.long
