"""Annotation end to end on a tiny model: prepare pairs, label them over HTTP, continue a dialogue with a live
pair, export, and train a reward model on the export."""

import json
import shutil

import pytest

from polyglot_llama.annotate.export import ExportConfig, run as export
from polyglot_llama.annotate.pairs import PairGenerator, PairSourceConfig
from polyglot_llama.annotate.prepare import PrepareConfig, run as prepare
from polyglot_llama.annotate.store import Store
from polyglot_llama.annotate.web import AnnotationApp
from polyglot_llama.errors import UserError
from polyglot_llama.train.loop import LoopConfig, OptimConfig
from polyglot_llama.train.reward import RewardConfig, RewardDataConfig, run as train_reward

from annotate_client import Browser
from polyglot_test_utils import sample_texts


def write_prompts(path, n_ko=6, n_en=2):
    records = [{"id": f"ko-{i}", "prompt": text[:60], "lang": "ko", "safety": i == 0}
               for i, text in enumerate(sample_texts("ko")[:n_ko])]
    records += [{"id": f"en-{i}", "prompt": text[:60], "lang": "en"} for i, text in enumerate(sample_texts("en")[:n_en])]
    records.append({"id": "bad", "messages": [{"role": "assistant", "content": "no user turn"}]})
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return str(path)


SOURCE = dict(temperature_a=0.7, temperature_b=1.3, max_new_tokens=6, seed=1)


@pytest.mark.slow
def test_prepare_label_continue_export_train(multi_model_dir, tmp_path):
    prompts = write_prompts(tmp_path / "prompts.jsonl")
    db = str(tmp_path / "ko.db")
    source = PairSourceConfig(model_a=str(multi_model_dir), **SOURCE)
    result = prepare(PrepareConfig(db=db, prompts=[prompts], pair_source=source, overlap=0.5, batch_size=4))
    assert result["prompts"] == 8 and result["added"] + sum(result["rejected"].values()) == 9
    assert result["added"] >= 7
    assert prepare(PrepareConfig(db=db, prompts=[prompts], pair_source=source, overlap=0.5))["added"] == 0

    store = Store(db)
    with store.connect() as conn:
        items = conn.execute("SELECT * FROM items ORDER BY id").fetchall()
    assert {r["kind"] for r in items if r["key"] == "prompt:ko-0"} == {"safety"}
    sources = {(r["source_a"].rsplit("@", 1)[1], r["source_b"].rsplit("@", 1)[1]) for r in items}
    assert sources == {("T=0.7", "T=1.3"), ("T=1.3", "T=0.7")}  # both orders occur: no side is always model A
    assert all(r["answer_a"] != r["answer_b"] for r in items)

    kim_token = store.add_annotator("kim", langs=("ko",), ui_lang="ko")
    lee_token = store.add_annotator("lee", langs=("ko",))
    app = AnnotationApp(store, PairGenerator(source))
    kim, lee = Browser(app, kim_token), Browser(app, lee_token)
    while (item := kim.item()) is not None:
        assert kim.label(item, choice="a" if item % 2 else "b", strength="better").status_code == 303
    while (item := lee.item()) is not None:
        assert lee.label(item, choice="a").status_code == 303

    # continue kim's last dialogue: the chosen answer becomes context and a live pair is assigned to kim
    last_label = max(r["id"] for r in store.labelled() if r["annotator"] == "kim")
    chosen_row = store.label(last_label, next(a for a in store.annotators() if a.name == "kim"))
    chosen = chosen_row["answer_a"] if chosen_row["choice"] == "a" else chosen_row["answer_b"]
    assert kim.post("/continue", label=str(last_label), message="더 자세히 알려 주세요").headers["location"] == "/"
    live = kim.item()
    dialog = store.item(live).dialog
    assert dialog[-2:] == [{"role": "assistant", "content": chosen}, {"role": "user", "content": "더 자세히 알려 주세요"}]
    assert lee.item() is None  # a live item belongs to its author
    kim.label(live, choice="b", strength="slightly_better")

    summary = export(ExportConfig(db=db, output=str(tmp_path / "export")))
    n_ko_items = sum(r["lang"] == "ko" for r in items)
    doubles = sum(r["lang"] == "ko" and r["required"] == 2 for r in items)
    assert summary["pairs"]["helpfulness"] + summary["pairs"]["safety"] == n_ko_items + doubles + 1
    assert summary["pairs"]["safety"] >= 1

    rm = tmp_path / "rm"
    out = train_reward(RewardConfig(
        model=str(multi_model_dir), output=str(rm), kind="helpfulness",
        data=RewardDataConfig(train=[str(tmp_path / "export" / "helpfulness.jsonl")], validation_fraction=0.0, max_length=96),
        loop=LoopConfig(max_steps=3, micro_batch_size=4, grad_accum=1, log_every=1, resume=False),
        optim=OptimConfig(lr=1e-3)))
    assert out["steps"] == 3 and (rm / "model.safetensors").exists()


def test_pair_source_validation():
    with pytest.raises(UserError, match="same distribution"):
        PairSourceConfig(model_a="m", temperature_a=1.0, temperature_b=1.0)
    with pytest.raises(UserError, match="temperature_b"):
        PairSourceConfig(model_a="m", temperature_b=0.0)
    with pytest.raises(UserError, match="model_a"):
        PrepareConfig(db="x.db", prompts=["p.jsonl"])
