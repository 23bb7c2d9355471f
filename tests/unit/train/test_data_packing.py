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


def test_no_attention_across_documents_at_batch_size_two(en_model_dir):
    """Two packed rows in one batch, laid out differently (2 + 1 documents and 1 + 2): every document's
    logits equal its logits alone, and the batch's summed loss is the sum of the documents' losses."""
    from polyglot_llama.model.checkpoint import load_causal_lm
    from polyglot_llama.train.data import causal_lm_step

    model = load_causal_lm(en_model_dir).eval()
    docs = [[40, 41, 42], [50, 51, 52, 53, 54], [60, 61], [70, 71, 72, 73]]
    rows = pack_ids(docs[:2], seq_len=12, bos_id=1, eos_id=2, document_masking=True)  # 5 + 7 tokens
    rows += pack_ids(docs[2:], seq_len=12, bos_id=1, eos_id=2, document_masking=True)  # 4 + 6, 2 padding
    assert len(rows) == 2
    batch = collate_packed(rows)
    spans = [(0, 0, 5), (0, 5, 12), (1, 0, 4), (1, 4, 10)]  # (row, start, end) of <s> doc </s>
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
        leaky = model(input_ids=batch["input_ids"], use_cache=False).logits
        for doc, (row, start, end) in zip(docs, spans):
            alone = model(input_ids=torch.tensor([[1, *doc, 2]]), use_cache=False).logits[0]
            torch.testing.assert_close(logits[row, start:end], alone, atol=1e-5, rtol=1e-4)
        assert not torch.allclose(leaky[1, 4:10], logits[1, 4:10], atol=1e-4)  # the check can fail

        out = causal_lm_step(model, batch)
        per_doc = []
        for doc in docs:
            ids = torch.tensor([[1, *doc, 2]])
            alone = causal_lm_step(model, {"input_ids": ids, "labels": ids, "position_ids": torch.arange(ids.shape[1])[None]})
            per_doc.append((float(alone.loss) * alone.n_tokens, alone.n_tokens))
    assert out.n_tokens == sum(n for _, n in per_doc) == sum(len(d) + 1 for d in docs)
    assert abs(float(out.loss) * out.n_tokens - sum(s for s, _ in per_doc)) < 1e-4
