import json

from polyglot_llama.annotate.export import ExportConfig, run as export
from polyglot_llama.annotate.import_pairs import ImportConfig, run as import_pairs
from polyglot_llama.annotate.store import Store
from polyglot_llama.io import RejectCounter
from polyglot_llama.train.reward_data import load_pairs


def annotator(store, name):
    store.add_annotator(name)
    return next(a for a in store.annotators() if a.name == name)


def test_export_maps_choice_strength_safety_and_splits_by_kind(tmp_path):
    store = Store(tmp_path / "a.db", create=True)
    with store.transaction() as db:
        store.add_item(db, "ko", "helpfulness", [{"role": "user", "content": "수도는?"}], "서울", "몰라", "m1@T=0.7", "m2@T=1.0")
        store.add_item(db, "ko", "safety", [{"role": "user", "content": "위험"}], "안 돼요", "이렇게 하세요", "m1", "m2")
        store.add_item(db, "en", "helpfulness", [{"role": "user", "content": "hi"}], "hello", "bye")
    kim = annotator(store, "kim")
    for item_id, choice, strength, safety, flagged in [(1, "a", "significantly_better", "both_safe", False),
                                                        (2, "a", "better", "chosen_only_safe", False),
                                                        (3, "b", "negligibly_better", "both_safe", True)]:
        assert store.next_item(kim).id == item_id
        store.submit(kim, item_id, choice, strength, safety, flagged=flagged)
    # item 2 is a safety item whose preferred answer was B for a second annotator
    lee = annotator(store, "lee")
    with store.transaction() as db:
        store.assign(db, 2, lee.id)
    store.submit(lee, 2, "b", "slightly_better", "both_unsafe")

    summary = export(ExportConfig(db=str(tmp_path / "a.db"), output=str(tmp_path / "out")))
    assert summary["pairs"] == {"helpfulness": 1, "safety": 2, "prompts": 0} and summary["flagged_left_out"] == 1
    helpful = [json.loads(line) for line in (tmp_path / "out" / "helpfulness.jsonl").read_text().splitlines()]
    assert helpful == [{"prompt": [{"role": "user", "content": "수도는?"}], "chosen": "서울", "rejected": "몰라",
                        "lang": "ko", "strength": "significantly_better", "is_safety": False, "safety_label": "both_safe",
                        "item": 1, "label": 1, "annotator": "kim", "source_chosen": "m1@T=0.7", "source_rejected": "m2@T=1.0"}]
    safety = [json.loads(line) for line in (tmp_path / "out" / "safety.jsonl").read_text().splitlines()]
    assert [(r["chosen"], r["rejected"], r["strength"], r["safety_label"], r["is_safety"]) for r in safety] == [
        ("안 돼요", "이렇게 하세요", "better", "chosen_only_safe", True),
        ("이렇게 하세요", "안 돼요", "slightly_better", "both_unsafe", True)]

    # what `reward` and `dpo` read back: strength and safety bins intact
    rejects = RejectCounter()
    pairs = load_pairs([str(tmp_path / "out" / "safety.jsonl")], rejects)
    assert rejects.count == 0
    assert [(p.chosen, p.strength, p.safety_label, p.is_safety, p.lang) for p in pairs] == [
        ("안 돼요", "better", "chosen_only_safe", True, "ko"), ("이렇게 하세요", "slightly_better", "both_unsafe", True, "ko")]

    with_flagged = export(ExportConfig(db=str(tmp_path / "a.db"), output=str(tmp_path / "out2"), include_flagged=True))
    assert with_flagged["pairs"]["helpfulness"] == 2


def test_import_chosen_rejected_pairs_shuffled_counted_and_resumable(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    records = [{"prompt": f"질문 {i}", "chosen": f"좋은 답 {i}", "rejected": f"나쁜 답 {i}", "lang": "ko"} for i in range(20)]
    records.append({"prompt": "x", "chosen": "same", "rejected": "same"})
    records.append({"prompt": "unsafe?", "chosen": "no", "rejected": "yes", "is_safety": True})
    pairs.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records) + "{broken\n", encoding="utf-8")
    db = str(tmp_path / "a.db")
    result = import_pairs(ImportConfig(db=db, pairs=[str(pairs)], overlap=0.5, seed=3))
    assert result["added"] == 21 and sum(result["rejected"].values()) == 2
    assert (tmp_path / "a.prepare_rejects.jsonl").exists() is False and (tmp_path / "a.import_rejects.jsonl").exists()
    store = Store(db)
    with store.connect() as conn:
        rows = conn.execute("SELECT answer_a, kind, required FROM items ORDER BY id").fetchall()
    first_is_chosen = sum(r["answer_a"].startswith("좋은") for r in rows[:20])
    assert 4 <= first_is_chosen <= 16  # the stored preference does not decide the side
    assert rows[20]["kind"] == "safety"
    assert 3 <= sum(r["required"] == 2 for r in rows) <= 18
    again = import_pairs(ImportConfig(db=db, pairs=[str(pairs)], overlap=0.5, seed=3))
    assert again["added"] == 0


def test_reexport_after_more_labels_through_the_cli(tmp_path, capsys):
    from polyglot_llama.cli import main

    db = str(tmp_path / "a.db")
    store = Store(db, create=True)
    with store.transaction() as conn:
        for i in range(2):
            store.add_item(conn, "ko", "helpfulness", [{"role": "user", "content": f"q{i}"}], f"a{i}", f"b{i}")
    kim = annotator(store, "kim")
    store.submit(kim, store.next_item(kim).id, "a", "better", "both_safe")
    out = str(tmp_path / "export")
    assert main(["annotate", "export", "--db", db, "--output", out]) == 0
    store.submit(kim, store.next_item(kim).id, "b", "better", "both_safe")
    with store.connect() as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the new label reaches the database file itself
    assert main(["annotate", "export", "--db", db, "--output", out]) == 0  # the database grew: not another run
    assert len((tmp_path / "export" / "helpfulness.jsonl").read_text().splitlines()) == 2
