"""Annotation server under load: N concurrent annotators label items on a live `annotate serve` (localhost).

Prints requests, errors and latency percentiles of the annotation round trip (GET the next item + POST the
label), and the same percentiles for /healthz measured in the same run, so the ratio shows what the
database work adds over the bare server on this machine. Traffic goes only to 127.0.0.1 and is bounded by
--seconds and --labels.

    python bench/bench_annotate.py [--clients 20] [--items 400] [--labels 20] [--seconds 60]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _checkout import use_checkout

ROOT = use_checkout()
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402

from annotate_client import free_port, run_load, start_server  # noqa: E402
from polyglot_llama.annotate.store import Store  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[int(q * (len(values) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--labels", type=int, default=20, help="labels per client at most")
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "bench.db")
        store = Store(db, create=True)
        with store.transaction() as conn:
            for i in range(args.items):
                store.add_item(conn, "ko", "helpfulness", [{"role": "user", "content": f"질문 {i} " * 20}],
                               "가" * 400, "나" * 400, required=2 if i % 10 == 0 else 1)
        tokens = [store.add_annotator(f"bench{i}") for i in range(args.clients)]
        port = free_port()
        server = start_server(db, port)
        try:
            base = f"http://127.0.0.1:{port}"
            health = []
            with httpx.Client(base_url=base) as client:
                for _ in range(200):
                    start = time.perf_counter()
                    client.get("/healthz")
                    health.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            stats = run_load(base, tokens, args.seconds, args.labels)
            wall = time.perf_counter() - start
        finally:
            server.kill()
            server.wait()
        labels = sum(len(v) for v in stats["items"].values())
        with store.connect() as conn:
            duplicates = conn.execute("SELECT COUNT(*) FROM (SELECT item_id FROM items i JOIN assignments s ON s.item_id = i.id "
                                      "WHERE i.required = 1 GROUP BY item_id HAVING COUNT(*) > 1)").fetchone()[0]
    print(f"clients {stats['clients']}, requests {stats['requests']}, errors {stats['errors']}, labels {labels} "
          f"in {wall:.1f} s ({stats['requests'] / wall:.0f} requests/s); single items given twice: {duplicates}")
    print(f"annotation requests: p50 {stats['p50_ms']:.1f} ms, p95 {stats['p95_ms']:.1f} ms")
    print(f"/healthz alone:      p50 {statistics.median(health):.1f} ms, p95 {percentile(health, 0.95):.1f} ms")
    print(f"ratio p95 annotation / healthz under {args.clients} clients: {stats['p95_ms'] / percentile(health, 0.95):.1f}x")


if __name__ == "__main__":
    main()
