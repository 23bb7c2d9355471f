"""The annotation web app (Starlette): log in with a token, compare two answers, rate, label safety, write
prompts, continue dialogues; an admin view of progress and agreement.

Security: the server binds to 127.0.0.1 unless told otherwise; a login token becomes a random session id in
an HttpOnly, SameSite=Strict cookie (both stored hashed); every form carries the session's CSRF token (the
login form a double-submit cookie); request bodies are capped at ``max_body_bytes`` and each text field at
``max_text_chars``; pages send a Content-Security-Policy that allows only this server's own script and style.
Every label is committed before the next page is rendered (POST, then a 303 redirect to the next item).
"""

from __future__ import annotations

import hmac
import json
import secrets
from pathlib import Path
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from ..errors import UserError
from ..languages import normalize_language
from .agreement import agreement_by_language
from .i18n import UI_LANGS, direction, strings
from .store import KINDS, SAFETY_BINS, STRENGTHS, Store

RESOURCES = Path(__file__).resolve().parents[1] / "resources" / "annotate"
SESSION_COOKIE = "pl_session"
LOGIN_CSRF_COOKIE = "pl_login_csrf"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
}


class BodyTooLarge(Exception):
    pass


class AnnotationApp:
    def __init__(self, store: Store, generator=None, max_body_bytes: int = 65536,
                 max_text_chars: int = 8000, secure_cookies: bool = False):
        self.store, self.generator = store, generator
        self.max_body_bytes, self.max_text_chars, self.secure_cookies = max_body_bytes, max_text_chars, secure_cookies
        self.env = Environment(loader=FileSystemLoader(RESOURCES), autoescape=select_autoescape(["html"]))
        get, post = ["GET"], ["POST"]
        routes = [Route(path, self._endpoint(handler), methods=methods) for path, handler, methods in [
            ("/", self.annotate_page, get), ("/login", self.login_page, get + post), ("/logout", self.logout, post),
            ("/label", self.label, post), ("/prompt", self.prompt, post), ("/continue", self.continue_dialog, post),
            ("/mine", self.mine, get), ("/admin", self.admin, get), ("/admin/stats.json", self.admin_json, get),
            ("/static/{name}", self.static, get), ("/healthz", lambda request, form: PlainTextResponse("ok"), get)]]
        self.app = Starlette(routes=routes, exception_handlers={BodyTooLarge: self._too_large, UserError: self._user_error})

    # --- plumbing ----------------------------------------------------------------------------------
    async def __call__(self, scope, receive, send):
        await self.app(scope, receive, send)

    def _endpoint(self, handler):
        """An ASGI endpoint that reads a POST body (capped) and runs ``handler(request, form)`` in the thread
        pool, so SQLite and live generation never block the event loop."""
        async def endpoint(request: Request) -> Response:
            form = await self._form(request) if request.method == "POST" else {}
            return await run_in_threadpool(handler, request, form)
        return endpoint

    def _render(self, name: str, status: int = 200, ui_lang: str = "en", **context) -> HTMLResponse:
        context.setdefault("annotator", None)
        html = self.env.get_template(name).render(t=strings(ui_lang), ui_lang=ui_lang, dir=direction(ui_lang),
                                                  dir_of=direction, **context)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    async def _form(self, request: Request) -> dict[str, str]:
        length = request.headers.get("content-length", "0")
        if not length.isdigit():
            raise UserError("the Content-Length header is not a number")
        if int(length) > self.max_body_bytes:
            raise BodyTooLarge()
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_body_bytes:
                raise BodyTooLarge()
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            raise UserError("forms must be sent as application/x-www-form-urlencoded")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise UserError("the form is not valid UTF-8") from None
        fields = {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}
        for key, value in fields.items():
            if len(value) > self.max_text_chars:
                raise UserError(f"field '{key}' is longer than {self.max_text_chars} characters")
        return fields

    async def _too_large(self, request: Request, exc) -> Response:
        return PlainTextResponse(f"request body larger than {self.max_body_bytes} bytes", status_code=413)

    async def _user_error(self, request: Request, exc: UserError) -> Response:
        return PlainTextResponse(str(exc), status_code=400, headers=SECURITY_HEADERS)

    def _who(self, request: Request):
        sid = request.cookies.get(SESSION_COOKIE)
        return self.store.session(sid) if sid else None

    def _authorise(self, request: Request, form: dict):
        """(annotator, form) of a POST with a live session and a matching CSRF token; else an error response."""
        who = self._who(request)
        if who is None:
            return None, RedirectResponse("/login", status_code=303)
        if not hmac.compare_digest(form.get("csrf", ""), who[1]):
            return None, PlainTextResponse("CSRF token missing or wrong; reload the page", status_code=403)
        return (who[0], form), None

    # --- pages -------------------------------------------------------------------------------------
    def login_page(self, request: Request, form: dict) -> Response:
        error = ""
        if request.method == "POST":
            cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
            if not cookie or not hmac.compare_digest(form.get("csrf", ""), cookie):
                return PlainTextResponse("CSRF token missing or wrong; reload the login page", status_code=403)
            session = self.store.login(form.get("token", "").strip())
            if session is not None:
                response = RedirectResponse("/", status_code=303)
                response.set_cookie(SESSION_COOKIE, session[0], httponly=True, samesite="strict",
                                    secure=self.secure_cookies, max_age=12 * 3600)
                response.delete_cookie(LOGIN_CSRF_COOKIE)
                return response
            error = "bad_token"
        csrf = secrets.token_urlsafe(24)
        ui = request.query_params.get("ui", "en")
        response = self._render("login.html", status=401 if error else 200, csrf=csrf, error=error,
                                ui_lang=ui if ui in UI_LANGS else "en")
        response.set_cookie(LOGIN_CSRF_COOKIE, csrf, httponly=True, samesite="strict", secure=self.secure_cookies)
        return response

    def logout(self, request: Request, form: dict) -> Response:
        ok, error = self._authorise(request, form)
        if error:
            return error
        self.store.logout(request.cookies[SESSION_COOKIE])
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    def annotate_page(self, request: Request, form: dict) -> Response:
        who = self._who(request)
        if who is None:
            return RedirectResponse("/login", status_code=303)
        annotator, csrf = who
        item = self.store.next_item(annotator)
        saved = request.query_params.get("saved", "")
        last = self.store.label(int(saved), annotator) if saved.isdigit() else None
        langs = annotator.langs or tuple(sorted(self.store.items_by_lang())) or ("en",)
        return self._render("annotate.html", annotator=annotator, csrf=csrf, item=item, last=last,
                            queued=request.query_params.get("queued") == "1", strengths=STRENGTHS,
                            safety_bins=SAFETY_BINS, kinds=KINDS, langs=langs, ui_lang=annotator.ui_lang,
                            live=self.generator is not None)

    def label(self, request: Request, form: dict) -> Response:
        ok, error = self._authorise(request, form)
        if error:
            return error
        annotator, form = ok
        if not form.get("item", "").isdigit():
            raise UserError("field 'item' must be an item id")
        label_id = self.store.submit(annotator, int(form["item"]), form.get("choice", ""), form.get("strength", ""),
                                     form.get("safety", ""), flagged=form.get("flag") == "1", note=form.get("note", ""))
        return RedirectResponse(f"/?saved={label_id}", status_code=303)

    def _new_item(self, annotator, lang: str, kind: str, dialog: list[dict], parent_label: int | None) -> bool:
        """A live pair for ``dialog`` assigned to its author (True), or the prompt queued (False)."""
        if self.generator is None:
            self.store.add_pending_prompt(annotator, lang, kind, dialog)
            return False
        from ..rlhf.prompts import Prompt

        prompt = Prompt(f"live-{secrets.token_hex(6)}", lang, dialog, is_safety=kind == "safety")
        pairs = self.generator.pairs([prompt])
        if not pairs:
            raise UserError("the model gave two identical or empty answers; rephrase the message and try again")
        pair = pairs[0]
        with self.store.transaction() as db:
            item_id = self.store.add_item(db, lang, kind, dialog, pair.answer_a, pair.answer_b, pair.source_a,
                                          pair.source_b, required=1, created_by=annotator.id, parent_label=parent_label)
            self.store.assign(db, item_id, annotator.id)
        return True

    def _text(self, form: dict, key: str) -> str:
        text = form.get(key, "").strip()
        if not text:
            raise UserError(f"field '{key}' is empty; write a message")
        return text

    def prompt(self, request: Request, form: dict) -> Response:
        ok, error = self._authorise(request, form)
        if error:
            return error
        annotator, form = ok
        kind = form.get("kind", "helpfulness")
        if kind not in KINDS:
            raise UserError(f"field 'kind' must be one of {KINDS}")
        lang = normalize_language(form.get("lang", "") or "en")
        live = self._new_item(annotator, lang, kind, [{"role": "user", "content": self._text(form, "message")}], None)
        return RedirectResponse("/" if live else "/?queued=1", status_code=303)

    def continue_dialog(self, request: Request, form: dict) -> Response:
        ok, error = self._authorise(request, form)
        if error:
            return error
        annotator, form = ok
        row = self.store.label(int(form["label"]), annotator) if form.get("label", "").isdigit() else None
        if row is None:
            raise UserError("field 'label' must be one of your own labels")
        chosen = row["answer_a"] if row["choice"] == "a" else row["answer_b"]
        dialog = json.loads(row["dialog"]) + [{"role": "assistant", "content": chosen},
                                              {"role": "user", "content": self._text(form, "message")}]
        live = self._new_item(annotator, row["lang"], row["kind"], dialog, row["id"])
        return RedirectResponse("/" if live else "/?queued=1", status_code=303)

    def mine(self, request: Request, form: dict) -> Response:
        who = self._who(request)
        if who is None:
            return RedirectResponse("/login", status_code=303)
        annotator, csrf = who
        rows = [dict(r, dialog=json.loads(r["dialog"])) for r in self.store.own_labels(annotator)]
        return self._render("mine.html", annotator=annotator, csrf=csrf, rows=rows, ui_lang=annotator.ui_lang)

    def stats(self) -> dict:
        labels = self.store.labelled()
        per_annotator: dict[str, dict[str, int]] = {}
        for row in labels:
            langs = per_annotator.setdefault(row["annotator"], {})
            langs[row["lang"]] = langs.get(row["lang"], 0) + 1
        flagged = [{"item": r["item_id"], "lang": r["lang"], "annotator": r["annotator"], "note": r["note"]}
                   for r in labels if r["flagged"]]
        return {"progress": {lang: {"items": n, "done": done} for lang, (n, done) in self.store.items_by_lang().items()},
                "annotators": per_annotator, "agreement": agreement_by_language(labels), "flagged": flagged,
                "pending_prompts": len(self.store.pending_prompts()), "labels": len(labels)}

    def _admin_only(self, request: Request):
        who = self._who(request)
        if who is None:
            return None, RedirectResponse("/login", status_code=303)
        if who[0].role != "admin":
            return None, PlainTextResponse("admins only", status_code=403)
        return who, None

    def admin(self, request: Request, form: dict) -> Response:
        who, error = self._admin_only(request)
        if error:
            return error
        return self._render("admin.html", annotator=who[0], csrf=who[1], stats=self.stats(),
                            ui_lang=who[0].ui_lang)

    def admin_json(self, request: Request, form: dict) -> Response:
        who, error = self._admin_only(request)
        return error or JSONResponse(self.stats(), headers=SECURITY_HEADERS)

    def static(self, request: Request, form: dict) -> Response:
        name = request.path_params["name"]
        media = {"app.js": "text/javascript", "app.css": "text/css"}
        if name not in media:
            return PlainTextResponse("not found", status_code=404)
        return Response((RESOURCES / name).read_bytes(), media_type=media[name], headers=SECURITY_HEADERS)
