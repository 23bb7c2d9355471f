"""The annotation server as a real process on localhost: 20 concurrent annotators, and kill -9 mid-burst.

Traffic goes only to 127.0.0.1, bounded in requests and time; the server is always killed at the end.
"""

import os
import signal
import threading
import time

import pytest

from polyglot_llama.annotate.store import Store

from annotate_client import HttpAnnotator, free_port, run_load, start_server


def fill(store: Store, n_single: int, n_double: int) -> None:
    with store.transaction() as db:
        for i in range(n_single + n_double):
            store.add_item(db, "ko", "helpfulness", [{"role": "user", "content": f"질문 {i}"}], f"가 {i}", f"나 {i}",
                           required=2 if i >= n_single else 1)


@pytest.mark.slow
def test_twenty_concurrent_annotators_never_share_a_single_item(tmp_path):
    db = str(tmp_path / "load.db")
    store = Store(db, create=True)
    fill(store, n_single=120, n_double=30)
    tokens = [store.add_annotator(f"a{i:02d}") for i in range(20)]
    port = free_port()
    server = start_server(db, port)
    try:
        stats = run_load(f"http://127.0.0.1:{port}", tokens, seconds=40, max_labels_each=20)
    finally:
        server.kill()
        server.wait()
    print({k: v for k, v in stats.items() if k != "items"})
    assert stats["finished_clients"] == 20 and stats["errors"] == 0
    with store.connect() as conn:
        per_item = conn.execute("SELECT i.id, i.required, (SELECT COUNT(*) FROM labels l WHERE l.item_id = i.id) AS n, "
                                "(SELECT COUNT(*) FROM assignments s WHERE s.item_id = i.id) AS given FROM items i").fetchall()
    assert all(r["given"] <= r["required"] and r["n"] <= r["required"] for r in per_item)
    assert sum(r["n"] for r in per_item) == 120 + 2 * 30  # every label landed, none twice
    for items in stats["items"].values():
        assert len(items) == len(set(items))  # nobody saw an item twice


@pytest.mark.slow
def test_kill_9_loses_no_acknowledged_label(tmp_path):
    db = str(tmp_path / "kill.db")
    store = Store(db, create=True)
    fill(store, n_single=400, n_double=0)
    tokens = [store.add_annotator(f"k{i}") for i in range(4)]
    port = free_port()
    server = start_server(db, port)
    acknowledged: list[tuple[int, int]] = []  # (label id, item id)
    stop = threading.Event()

    def burst(token):
        try:
            annotator = HttpAnnotator(f"http://127.0.0.1:{port}", token)
            while not stop.is_set():
                item = annotator.next_item()
                label_id = annotator.label(item)
                if label_id is not None:
                    acknowledged.append((label_id, item))
        except Exception:  # the server died under us: whatever was acknowledged is recorded
            pass

    threads = [threading.Thread(target=burst, args=(t,)) for t in tokens]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(server.pid, signal.SIGKILL)  # mid-burst: requests are in flight
    server.wait()
    stop.set()
    for thread in threads:
        thread.join(10)
    assert len(acknowledged) >= 40
    with store.connect() as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {(r["id"], r["item_id"]) for r in conn.execute("SELECT id, item_id FROM labels")}
    assert set(acknowledged) <= stored
    # and the restarted server serves the next unlabelled items
    server = start_server(db, port)
    try:
        annotator = HttpAnnotator(f"http://127.0.0.1:{port}", tokens[0])
        item = annotator.next_item()
        assert item is not None and item not in {i for _, i in stored}
    finally:
        server.kill()
        server.wait()
