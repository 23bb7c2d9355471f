"""Every route of the annotation app, over HTTP (Starlette's test client)."""

import json

from polyglot_llama.annotate.web import AnnotationApp

from annotate_client import Browser


def test_login_needs_a_valid_token_and_the_login_csrf(project):
    store, tokens = project
    app = AnnotationApp(store)
    anonymous = Browser(app)
    assert anonymous.client.get("/", follow_redirects=False).headers["location"] == "/login"
    page = anonymous.get("/login")
    assert page.status_code == 200 and page.headers["content-security-policy"].startswith("default-src 'self'")
    assert anonymous.post("/login", token="nope").status_code == 401
    assert anonymous.client.post("/login", data={"token": tokens["kim"]}).status_code == 403  # no CSRF field
    page = anonymous.get("/login")
    response = anonymous.post("/login", token=tokens["kim"])
    assert response.status_code == 303
    cookie = response.headers["set-cookie"].lower()
    assert "pl_session=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    assert "답변 비교" in anonymous.get("/").text  # Korean interface for kim


def test_label_flow_commits_before_the_next_item(project):
    store, tokens = project
    kim = Browser(AnnotationApp(store), tokens["kim"])
    first = kim.item()
    assert first == 1
    response = kim.label(first, choice="b", strength="significantly_better", safety="chosen_only_safe", note="좋음")
    assert response.status_code == 303 and response.headers["location"].startswith("/?saved=")
    rows = store.labelled()
    assert [(r["item_id"], r["choice"], r["strength"], r["safety"], r["note"]) for r in rows] == \
        [(1, "b", "significantly_better", "chosen_only_safe", "좋음")]
    assert kim.item() == 2


def test_csrf_and_assignment_are_enforced(project):
    store, tokens = project
    app = AnnotationApp(store)
    kim, lee = Browser(app, tokens["kim"]), Browser(app, tokens["lee"])
    item = kim.item()
    kim.csrf = "forged"
    assert kim.label(item).status_code == 403
    assert lee.label(3).status_code == 400  # never shown to lee
    assert store.labelled() == []


def test_bad_values_and_oversized_requests_are_refused(project):
    store, tokens = project
    app = AnnotationApp(store, max_body_bytes=4096, max_text_chars=100)
    kim = Browser(app, tokens["kim"])
    item = kim.item()
    assert kim.label(item, strength="much_better").status_code == 400
    assert kim.label(item, note="x" * 101).status_code == 400
    assert kim.label(item, note="x" * 5000).status_code == 413
    assert kim.post("/label", item="abc").status_code == 400
    raw = kim.client.post("/label", content=b"csrf=" + kim.csrf.encode() + b"&note=\xff\xfe",
                          headers={"content-type": "application/x-www-form-urlencoded"})
    assert raw.status_code == 400 and "UTF-8" in raw.text
    assert store.labelled() == []


def test_prompt_and_continue_are_queued_without_a_model(project):
    store, tokens = project
    kim = Browser(AnnotationApp(store), tokens["kim"])
    kim.label(kim.item(), choice="b")
    response = kim.post("/continue", label="1", message="더 자세히 설명해 주세요")
    assert response.headers["location"] == "/?queued=1"
    response = kim.post("/prompt", kind="safety", lang="ko", message="위험한 질문")
    assert response.headers["location"] == "/?queued=1"
    queued = [json.loads(p["dialog"]) for p in store.pending_prompts()]
    assert queued[0] == [{"role": "user", "content": "질문 0"}, {"role": "assistant", "content": "답 나0"},
                         {"role": "user", "content": "더 자세히 설명해 주세요"}]
    assert queued[1] == [{"role": "user", "content": "위험한 질문"}]
    assert kim.post("/prompt", kind="spam", message="x").status_code == 400
    assert kim.post("/prompt", message="   ").status_code == 400


def test_continue_only_from_own_labels(project):
    store, tokens = project
    app = AnnotationApp(store)
    kim, lee = Browser(app, tokens["kim"]), Browser(app, tokens["lee"])
    kim.label(kim.item())
    assert lee.post("/continue", label="1", message="hi").status_code == 400


def test_annotators_see_only_their_own_labels(project):
    store, tokens = project
    app = AnnotationApp(store)
    kim, lee = Browser(app, tokens["kim"]), Browser(app, tokens["lee"])
    kim.label(kim.item())  # item 1 (overlap)
    lee_item = lee.item()
    assert lee_item == 1
    lee.label(lee_item)
    kim.label(kim.item())  # item 2
    mine = kim.get("/mine").text
    assert "질문 0" in mine and "질문 1" in mine
    theirs = lee.get("/mine").text
    assert "질문 0" in theirs and "질문 1" not in theirs
    assert lee.get("/?saved=3").text.count('name="label"') == 0  # label 3 is kim's


def test_admin_view_progress_agreement_flags(project):
    store, tokens = project
    app = AnnotationApp(store)
    kim, lee, boss = (Browser(app, tokens[n]) for n in ("kim", "lee", "boss"))
    kim.label(kim.item(), choice="a")
    lee.label(lee.item(), choice="b", flag="1", note="wrong language")
    assert kim.get("/admin").status_code == 403
    stats = boss.client.get("/admin/stats.json").json()
    assert stats["progress"] == {"ko": {"items": 3, "done": 1}}
    assert stats["annotators"] == {"kim": {"ko": 1}, "lee": {"ko": 1}}
    assert stats["agreement"] == {"ko": {"items": 1, "percent": 0.0, "kappa": 0.0}}
    assert stats["flagged"] == [{"item": 1, "lang": "ko", "annotator": "lee", "note": "wrong language"}]
    page = boss.get("/admin").text
    assert "wrong language" in page and "0.0 %" in page
    assert "<th>Items</th>" in page and "built-in method" not in page


def test_logout_ends_the_session_and_static_files(project):
    store, tokens = project
    kim = Browser(AnnotationApp(store), tokens["kim"])
    assert kim.client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert kim.client.get("/static/../store.py").status_code == 404
    assert kim.post("/logout").headers["location"] == "/login"
    assert kim.client.get("/", follow_redirects=False).status_code == 303


def test_right_to_left_layout_for_arabic_items(project):
    store, tokens = project
    with store.transaction() as db:
        store.add_item(db, "ar", "helpfulness", [{"role": "user", "content": "ما هي عاصمة مصر؟"}], "القاهرة", "لا أعرف")
    token = store.add_annotator("amal", langs=("ar",), ui_lang="ar")
    page = Browser(AnnotationApp(store), token).get("/").text
    assert '<html lang="ar" dir="rtl">' in page
    assert 'class="dialog" lang="ar" dir="rtl"' in page
