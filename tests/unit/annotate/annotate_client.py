"""A logged-in HTTP client for the annotation app's tests (not a conftest: 'from conftest import' is ambiguous)."""

import re

from starlette.testclient import TestClient

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
ITEM = re.compile(r'data-item="(\d+)"')


class Browser:
    """A logged-in test client that keeps the page's CSRF token, as a browser would."""

    def __init__(self, app, token: str | None = None):
        self.client = TestClient(app, base_url="http://127.0.0.1")
        self.csrf = ""
        if token is not None:
            page = self.client.get("/login")
            response = self.client.post("/login", data={"csrf": CSRF.search(page.text).group(1), "token": token},
                                        follow_redirects=False)
            assert response.status_code == 303, response.text
            self.get("/")

    def get(self, path: str):
        response = self.client.get(path)
        found = CSRF.search(response.text)
        if found:
            self.csrf = found.group(1)
        return response

    def post(self, path: str, **fields):
        return self.client.post(path, data={"csrf": self.csrf, **fields}, follow_redirects=False)

    def item(self) -> int | None:
        found = ITEM.search(self.get("/").text)
        return int(found.group(1)) if found else None

    def label(self, item: int, choice="a", strength="better", safety="both_safe", **extra):
        return self.post("/label", item=str(item), choice=choice, strength=strength, safety=safety, **extra)
