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


# --- a real server in a subprocess, and clients that talk to it over TCP ---------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db: str, port: int, *extra: str, timeout_s: float = 60.0):
    """`polyglot-llama annotate serve` on 127.0.0.1:port; returns the Popen once /healthz answers."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "polyglot_llama.cli", "annotate", "serve", "--db", db,
                                "--port", str(port), *extra], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not start")


class HttpAnnotator:
    """One annotator's session against a live server; records each request's latency in seconds."""

    def __init__(self, base_url: str, token: str):
        import httpx

        self.http = httpx.Client(base_url=base_url, timeout=30.0, follow_redirects=False)
        self.latencies: list[tuple[str, float]] = []
        self.errors = 0
        page = self._request("GET", "/login")
        response = self._request("POST", "/login", data={"csrf": CSRF.search(page.text).group(1), "token": token})
        if response.status_code != 303:
            raise RuntimeError(f"login failed: {response.status_code}")
        self.csrf = ""

    def _request(self, method: str, path: str, **kw):
        import time

        start = time.perf_counter()
        response = self.http.request(method, path, **kw)
        self.latencies.append((f"{method} {path.split('?')[0]}", time.perf_counter() - start))
        if response.status_code >= 400:
            self.errors += 1
        return response

    def next_item(self) -> int | None:
        page = self._request("GET", "/")
        self.csrf = CSRF.search(page.text).group(1)
        found = ITEM.search(page.text)
        return int(found.group(1)) if found else None

    def label(self, item: int, choice: str = "a") -> int | None:
        """The acknowledged label id (from the redirect), or None when the server refused."""
        response = self._request("POST", "/label", data={"csrf": self.csrf, "item": str(item), "choice": choice,
                                                        "strength": "better", "safety": "both_safe"})
        location = response.headers.get("location", "")
        return int(location.split("saved=")[1]) if response.status_code == 303 and "saved=" in location else None


def run_load(base_url: str, tokens: list[str], seconds: float, max_labels_each: int) -> dict:
    """Every token's annotator labels items in its own thread until none are left, ``max_labels_each`` or
    ``seconds`` is reached. Returns requests, errors, latency percentiles (ms) and what each got."""
    import statistics
    import threading
    import time

    results: dict[int, dict] = {}
    deadline = time.monotonic() + seconds

    def work(index: int, token: str):
        annotator = HttpAnnotator(base_url, token)
        got: list[int] = []
        while len(got) < max_labels_each and time.monotonic() < deadline:
            item = annotator.next_item()
            if item is None:
                break
            if annotator.label(item, "ab"[item % 2]) is not None:
                got.append(item)
        results[index] = {"items": got, "latencies": annotator.latencies, "errors": annotator.errors}

    threads = [threading.Thread(target=work, args=(i, t)) for i, t in enumerate(tokens)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    latencies = sorted(ms * 1000 for r in results.values() for _, ms in r["latencies"])
    return {"clients": len(tokens), "finished_clients": len(results), "requests": len(latencies),
            "errors": sum(r["errors"] for r in results.values()),
            "p50_ms": statistics.median(latencies) if latencies else None,
            "p95_ms": latencies[int(0.95 * (len(latencies) - 1))] if latencies else None,
            "items": {i: r["items"] for i, r in results.items()}}
