import pytest

from polyglot_llama.annotate.store import Store


@pytest.fixture
def project(tmp_path):
    """A store with three Korean items (the first for two annotators), two annotators and an admin."""
    store = Store(tmp_path / "a.db", create=True)
    tokens = {"kim": store.add_annotator("kim", ui_lang="ko"), "lee": store.add_annotator("lee"),
              "boss": store.add_annotator("boss", role="admin")}
    with store.transaction() as db:
        for i in range(3):
            store.add_item(db, "ko", "helpfulness", [{"role": "user", "content": f"질문 {i}"}], f"답 가{i}",
                           f"답 나{i}", required=2 if i == 0 else 1)
    return store, tokens
