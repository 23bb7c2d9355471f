import time

import pytest

from polyglot_llama.annotate.store import Store
from polyglot_llama.errors import UserError


def make_store(tmp_path, items, lease_s=1800.0):
    """``items``: list of (lang, required, created_by)."""
    store = Store(tmp_path / "a.db", lease_s=lease_s, create=True)
    with store.transaction() as db:
        for i, (lang, required, created_by) in enumerate(items):
            store.add_item(db, lang, "helpfulness", [{"role": "user", "content": f"q{i}"}], f"A{i}", f"B{i}",
                           required=required, created_by=created_by)
    return store


def login(store, name, **kw):
    store.add_annotator(name, **kw)
    return next(a for a in store.annotators() if a.name == name)


def label(store, who, item_id, choice="a"):
    return store.submit(who, item_id, choice, "better", "both_safe")


def test_single_item_never_goes_to_two_annotators(tmp_path):
    store = make_store(tmp_path, [("ko", 1, None)])
    kim, lee = login(store, "kim"), login(store, "lee")
    assert store.next_item(kim).id == 1
    assert store.next_item(lee) is None  # assigned to kim, lease live
    assert store.next_item(kim).id == 1  # kim reloads: the same open item
    label(store, kim, 1)
    assert store.next_item(kim) is None and store.next_item(lee) is None


def test_overlap_item_goes_to_exactly_two_and_never_twice_to_one(tmp_path):
    store = make_store(tmp_path, [("ko", 2, None)])
    kim, lee, park = (login(store, n) for n in ("kim", "lee", "park"))
    assert store.next_item(kim).id == 1 and store.next_item(lee).id == 1
    assert store.next_item(park) is None
    label(store, kim, 1)
    assert store.next_item(kim) is None  # labelled by kim: never shown to kim again
    label(store, lee, 1, "b")
    assert store.next_item(park) is None


def test_expired_lease_returns_the_item(tmp_path):
    store = make_store(tmp_path, [("ko", 1, None)], lease_s=0.2)
    kim, lee = login(store, "kim"), login(store, "lee")
    assert store.next_item(kim).id == 1
    time.sleep(0.3)
    assert store.next_item(lee).id == 1
    label(store, lee, 1)
    with pytest.raises(UserError, match="already"):
        label(store, lee, 1)
    with pytest.raises(UserError, match="given to someone else"):
        label(store, kim, 1)  # kim comes back after the lease: the single item keeps its one label
    assert len(store.labelled()) == 1


def test_languages_and_authors_filter_items(tmp_path):
    store = make_store(tmp_path, [("en", 1, None), ("ko", 1, None), ("ko", 1, 99)])
    kim = login(store, "kim", langs=("ko",))
    assert store.next_item(kim).id == 2  # not English; item 3 belongs to annotator 99
    label(store, kim, 2)
    assert store.next_item(kim) is None


def test_label_needs_an_assignment_and_valid_values(tmp_path):
    store = make_store(tmp_path, [("ko", 1, None)])
    kim = login(store, "kim")
    with pytest.raises(UserError, match="not assigned"):
        label(store, kim, 1)
    store.next_item(kim)
    with pytest.raises(UserError, match="strength"):
        store.submit(kim, 1, "a", "much_better", "both_safe")
    with pytest.raises(UserError, match="choice"):
        store.submit(kim, 1, "c", "better", "both_safe")


def test_tokens_and_sessions_are_stored_hashed(tmp_path):
    store = make_store(tmp_path, [])
    token = store.add_annotator("kim")
    sid, csrf = store.login(token)
    assert store.login("wrong") is None
    assert store.session(sid)[0].name == "kim" and store.session(sid)[1] == csrf
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("a.db*"))
    assert token.encode() not in raw and sid.encode() not in raw
    store.logout(sid)
    assert store.session(sid) is None
    with pytest.raises(UserError, match="already exists"):
        store.add_annotator("kim")


def test_missing_database_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no annotation database"):
        Store(tmp_path / "none.db")


def test_a_live_pair_comes_before_the_open_assignment(tmp_path):
    store = make_store(tmp_path, [("ko", 1, None)])
    kim = login(store, "kim")
    assert store.next_item(kim).id == 1  # open, not yet labelled
    with store.transaction() as db:
        live = store.add_item(db, "ko", "helpfulness", [{"role": "user", "content": "more"}], "x", "y", created_by=kim.id)
        store.assign(db, live, kim.id)
    assert store.next_item(kim).id == live
    label(store, kim, live)
    assert store.next_item(kim).id == 1
