"""A two-annotator Korean session in real headless Chromium (Debian's package, driven by Playwright): log in,
label three pairs with the keyboard, continue a dialogue with a live pair, the admin view, export, and a
reward model trained on the export.

Set POLYGLOT_SCREENSHOTS=docs/annotate to refresh the screenshots that docs/annotate.md shows.
"""

import json
import os
import shutil
from pathlib import Path

import pytest

from polyglot_llama.annotate.export import ExportConfig, run as export
from polyglot_llama.annotate.prepare import PrepareConfig, run as prepare
from polyglot_llama.annotate.pairs import PairSourceConfig
from polyglot_llama.annotate.store import Store
from polyglot_llama.train.loop import LoopConfig, OptimConfig
from polyglot_llama.train.reward import RewardConfig, RewardDataConfig, run as train_reward

from annotate_client import free_port, start_server
from polyglot_test_utils import sample_texts

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# What the machine's closed network needs: no background connections, no sandbox as root, no GPU.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def chromium_or_skip():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs it (apt-get install chromium fonts-noto-cjk)")
        pytest.skip("no chromium: apt-get install chromium fonts-noto-cjk")
    return pytest.importorskip("playwright.sync_api")


def log_in(browser, base: str, token: str):
    page = browser.new_context(viewport={"width": 1200, "height": 900}, locale="ko-KR").new_page()
    page.goto(f"{base}/login")
    page.fill("#token", token)
    page.press("#token", "Enter")
    page.wait_for_url(f"{base}/")
    return page


def label_with_keys(page, keys: str) -> int:
    """Press ``keys`` (e.g. "a2d" then Enter) on the current item; returns the labelled item id."""
    item = int(page.get_attribute("#label-form", "data-item"))
    page.locator("body").click(position={"x": 5, "y": 5})  # focus the page, not a text field
    for key in keys:
        page.keyboard.press(key)
    page.keyboard.press("Enter")
    page.wait_for_selector("#saved")
    return item


@pytest.mark.slow
def test_two_annotator_korean_session_in_chromium(multi_model_dir, tmp_path):
    playwright_api = chromium_or_skip()
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"ko-{i}", "prompt": t[:50], "lang": "ko"}, ensure_ascii=False) + "\n"
                               for i, t in enumerate(sample_texts("ko")[:7])), encoding="utf-8")
    db = str(tmp_path / "ko.db")
    source = dict(temperature_a=0.7, temperature_b=1.3, max_new_tokens=8, seed=2)
    prepare(PrepareConfig(db=db, prompts=[str(prompts)], pair_source=PairSourceConfig(model_a=str(multi_model_dir), **source),
                          overlap=0.0))
    store = Store(db)
    kim = store.add_annotator("kim", langs=("ko",), ui_lang="ko")
    lee = store.add_annotator("lee", langs=("ko",), ui_lang="ko")
    admin = store.add_annotator("admin", role="admin")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(db, port, "--pair-source.model-a", str(multi_model_dir), "--pair-source.temperature-a", "0.7",
                          "--pair-source.temperature-b", "1.3", "--pair-source.max-new-tokens", "8")
    shots = Path(os.environ.get("POLYGLOT_SCREENSHOTS") or tmp_path)
    try:
        with playwright_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            kim_page, lee_page = log_in(browser, base, kim), log_in(browser, base, lee)
            assert kim_page.locator("h2").first.inner_text().startswith("대화")  # the Korean interface
            kim_page.screenshot(path=str(shots / "annotate-page.png"), full_page=True)
            kim_items = [label_with_keys(kim_page, k) for k in ("a1s", "b2d", "a3u")]
            lee_items = [label_with_keys(lee_page, k) for k in ("b4d", "a2d")]
            assert not set(kim_items) & set(lee_items)

            # continue kim's last dialogue: a live pair from the model, answered with the keyboard again
            kim_page.fill("#continue-message", "조금 더 자세히 설명해 주세요.")
            kim_page.click("#continue-submit")
            kim_page.wait_for_selector("#label-form")
            turns = kim_page.locator(".dialog .turn").all_inner_texts()
            assert len(turns) == 3 and "조금 더 자세히 설명해 주세요." in turns[-1]
            live_item = label_with_keys(kim_page, "b1d")

            admin_page = log_in(browser, base, admin)
            admin_page.goto(f"{base}/admin")
            assert "kim" in admin_page.inner_text("#annotators") and "lee" in admin_page.inner_text("#annotators")
            admin_page.screenshot(path=str(shots / "admin-view.png"), full_page=True)
            browser.close()
    finally:
        server.kill()
        server.wait()

    rows = {(r["annotator"], r["item_id"]): r for r in store.labelled()}
    assert [(rows["kim", i]["choice"], rows["kim", i]["strength"], rows["kim", i]["safety"]) for i in kim_items] == [
        ("a", "significantly_better", "chosen_only_safe"), ("b", "better", "both_safe"), ("a", "slightly_better", "both_unsafe")]
    assert rows["lee", lee_items[0]]["strength"] == "negligibly_better"
    assert rows["kim", live_item]["choice"] == "b"
    assert (shots / "annotate-page.png").stat().st_size > 10_000

    summary = export(ExportConfig(db=db, output=str(tmp_path / "export")))
    assert summary["pairs"]["helpfulness"] == 6
    out = train_reward(RewardConfig(
        model=str(multi_model_dir), output=str(tmp_path / "rm"), kind="helpfulness",
        data=RewardDataConfig(train=[str(tmp_path / "export" / "helpfulness.jsonl")], validation_fraction=0.0,
                              max_length=96),
        loop=LoopConfig(max_steps=2, micro_batch_size=3, grad_accum=1, log_every=1, resume=False),
        optim=OptimConfig(lr=1e-3)))
    assert out["steps"] == 2
