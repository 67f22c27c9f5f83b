"""A cold ``recsys serve`` (empty numba cache) answers at once, interpreted, then switches
its workers to compiled ones without losing a request (a real server process, real Redis)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_helpers import publish, recs
from fastapi.testclient import TestClient

from serving.api.supervisor import COMPILED_LINE
from serving.store import Store

pytestmark = pytest.mark.slow

EVENTS = [
    {"customer_id": "c1", "item_id": "i20", "event_type": "view"},
    {"customer_id": "c1", "item_id": "i7", "event_type": "add_to_cart"},
    {"customer_id": "c2", "item_id": "i2", "event_type": "purchase"},
    {"customer_id": "c2", "item_id": "i11", "event_type": "view"},
]
REQUESTS = [
    ("c0", {"n": 5}),
    ("c1", {"n": 5}),
    ("c1", {"n": 3, "context": "cart"}),
    ("c2", {"n": 4, "context": "product", "item_id": "i5"}),
    ("c2", {"n": 6, "exclude": "i1,i4"}),
    ("nobody", {"n": 5}),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    """``python -m recsys serve`` with its own (empty) numba cache; stderr collected."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = int(env["RECSYS_PORT"])
        self.base = f"http://127.0.0.1:{self.port}"
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "recsys", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())

    def wait_for(self, check: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert self.proc.poll() is None, f"recsys serve exited: {self.lines}"
            assert time.monotonic() < deadline, f"{what} within {timeout} s: {self.lines}"
            time.sleep(0.1)

    def get(self, path: str, **params: Any) -> httpx.Response:
        # a new connection per request: whichever worker accepts it answers
        return httpx.get(self.base + path, params=params, timeout=30)


Fetch = Callable[[str, dict[str, Any]], dict[str, Any]]


def _same(served: Fetch, reference: Fetch) -> None:
    """The same items, reasons and scores for every request of ``REQUESTS``. Each pair is
    asked back to back; the clock still moves between the two answers, and the session
    weights decay with it (half-life 30 min: 4e-4 of a score per second), hence rel=1e-3."""
    for customer, params in REQUESTS:
        x, y = served(customer, params), reference(customer, params)
        assert not x["degraded"] and not y["degraded"]
        assert x["items"], x
        assert [(i["item_id"], i["reason"]) for i in x["items"]] == [
            (i["item_id"], i["reason"]) for i in y["items"]
        ]
        assert [i["score"] for i in x["items"]] == pytest.approx(
            [i["score"] for i in y["items"]], rel=1e-3
        )


@pytest.fixture
def serve_env(redis_url: str, redis_prefix: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_DISABLE_JIT"}
    env.update(
        REDIS_URL=redis_url,
        RECSYS_REDIS_PREFIX=redis_prefix,
        RECSYS_PORT=str(_free_port()),
        RECSYS_WORKERS="2",
        RECSYS_FALLBACK_PATH=str(tmp_path / "serve-fallback.json"),
        NUMBA_CACHE_DIR=str(tmp_path / "numba"),
    )
    yield env


def test_a_cold_start_answers_interpreted_then_switches_to_compiled(
    store: Store, make_client: Callable[..., TestClient], serve_env: dict[str, str]
) -> None:
    publish(store, "v1")
    # the reference: an in-process app on the compiled fast path (this process's cache)
    fast = make_client()
    assert fast.post("/v1/events", json={"events": EVENTS}).status_code == 202
    service = fast.app.state.service  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while "v1" not in service.compiled_versions:
        assert time.monotonic() < deadline, "the reference app never compiled the version"
        recs(fast, "c0")
        time.sleep(0.05)

    def reference(customer: str, params: dict[str, Any]) -> dict[str, Any]:
        return recs(fast, customer, **params)

    server = Serve(serve_env)
    try:

        def served(customer: str, params: dict[str, Any]) -> dict[str, Any]:
            r = server.get(f"/v1/customers/{customer}/recommendations", **params)
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            return body

        def answering() -> bool:
            try:
                return bool(served("c0", {"n": 5})["items"])
            except httpx.HTTPError:
                return False

        server.wait_for(answering, "a first answer", 60)
        ready = server.get("/readyz").json()
        assert ready["ready"] and ready["compiled"] is False, ready
        assert "recsys_compiled 0.0" in server.get("/metrics").text
        assert any("not in the cache yet" in line for line in server.lines)
        _same(served, reference)  # interpreted == compiled fast path

        # requests all through the switch: none may fail or degrade
        failures: list[str] = []
        answered = [0]
        stop = threading.Event()

        def hammer() -> None:
            while not stop.is_set():
                try:
                    body = served("c1", {"n": 5})
                    answered[0] += 1
                    if body["degraded"] or not body["items"]:
                        failures.append(str(body))
                except (httpx.HTTPError, AssertionError) as exc:
                    failures.append(repr(exc))
                time.sleep(0.02)

        thread = threading.Thread(target=hammer, daemon=True)
        thread.start()
        try:
            server.wait_for(
                lambda: any(COMPILED_LINE in line for line in server.lines),
                "the compiled path",
                timeout=400,
            )
        finally:
            stop.set()
            thread.join(timeout=60)
        assert not failures, failures[:5]
        assert answered[0] > 10

        for _ in range(10):  # both workers (each request on a new connection)
            assert server.get("/readyz").json()["compiled"] is True
        assert "recsys_compiled 1.0" in server.get("/metrics").text
        _same(served, reference)
    finally:
        server.proc.terminate()
        server.proc.wait(timeout=60)
    assert server.proc.returncode == 0, server.lines

    # the next start finds the cache filled: compiled from the first request
    check = "from serving import jit; print(jit.cache_ready())"
    out = subprocess.run(
        [sys.executable, "-c", check], env=serve_env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "True"
