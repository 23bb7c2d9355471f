"""Language ID: the default lid.176.ftz on the project's own text, and label normalisation of other models."""

from __future__ import annotations

import pytest

from polyglot_test_utils import sample_records
from polyglot_llama.corpus.lid import load_lid_model, predict_language
from polyglot_llama.errors import UserError

LANGS = ["ko", "ja", "zh", "de", "en", "ru", "ar", "hi"]


def test_default_model_accuracy_on_clean_paragraphs():
    model = load_lid_model()
    assert model.scheme == "lid176" and len(model.labels) == 176
    records = [r for lang in LANGS for r in sample_records(lang)]
    correct = sum(predict_language(model, r["text"])[0] == r["lang"] for r in records)
    assert len(records) >= 300
    assert correct / len(records) >= 0.97
    for lang in LANGS:  # every language on its own, too: a model good on most but blind to one fails here
        texts = [r["text"] for r in sample_records(lang)]
        assert sum(predict_language(model, t)[0] == lang for t in texts) / len(texts) >= 0.9, lang


def test_prediction_shape_and_edge_cases():
    model = load_lid_model()
    code, score = predict_language(model, "Das ist ein Satz.\nUnd noch einer, auf einer neuen Zeile.")
    assert code == "de" and 0.5 < score <= 1.0
    assert predict_language(model, " \n\t") == ("und", 0.0)
    assert load_lid_model() is model  # loaded once per process
    # lid.176's `als` is Alemannic (gsw), not Tosk Albanian
    assert model.label_codes["__label__als"] == "gsw"


def test_glotlid_style_model_labels_are_normalised(tmp_path):
    import fasttext

    train = tmp_path / "train.txt"
    lines = []
    for label, lang in (("kor_Hang", "ko"), ("eng_Latn", "en"), ("als_Latn", "de")):
        lines += [f"__label__{label} {r['text']}" for r in sample_records(lang)]
    train.write_text("\n".join(lines) + "\n", encoding="utf-8")
    trained = fasttext.train_supervised(input=str(train), epoch=20, dim=16, minn=1, maxn=3, verbose=0)
    path = tmp_path / "glot_style.bin"
    trained.save_model(str(path))

    model = load_lid_model(path)
    assert model.scheme == "glotlid"
    assert set(model.label_codes.values()) == {"ko", "en", "sq"}  # GlotLID's als_Latn *is* Tosk Albanian
    assert predict_language(model, sample_records("ko")[0]["text"])[0] == "ko"
    assert model.script_of(sample_records("ko")[0]["text"]) == "Hang"


def test_missing_or_invalid_model_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_lid_model(tmp_path / "nope.bin")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a model")
    with pytest.raises(UserError, match="not a fastText model"):
        load_lid_model(junk)


def test_tagger_tags_every_document_in_order_across_batches(monkeypatch):
    from datatrove.data import Document

    from polyglot_llama.corpus import language_steps

    monkeypatch.setattr(language_steps, "LID_BATCH", 4)  # 10 documents: two full batches and a partial one
    langs = ["ko", "de", "ja", "en", "ru", "zh", "ar", "hi", "ko", "en"]
    texts = [sample_records(lang)[i]["text"] for i, lang in enumerate(langs)]
    tagger = language_steps.LanguageTagger()
    docs = list(tagger.run(iter([Document(text=t, id=str(i)) for i, t in enumerate(texts)])))
    assert [d.id for d in docs] == [str(i) for i in range(10)]
    assert [d.metadata["language"] for d in docs] == langs
    assert tagger.stats["docs_in|ko"].total == 2 and tagger.stats["docs_kept|en"].total == 2
