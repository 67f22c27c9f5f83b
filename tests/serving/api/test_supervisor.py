"""A cold ``recsys serve`` (empty numba cache) answers at once, interpreted, then switches
its workers to compiled ones without losing a request (a real server process, real Redis)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_helpers import publish, recs
from fastapi.testclient import TestClient

from serving.api.supervisor import COMPILED_LINE
from serving.store import Store

# bench/startup.py's launcher of `recsys serve` (bench/ leaves sys.path again afterwards)
BENCH = str(Path(__file__).resolve().parents[3] / "bench")
sys.path.insert(0, BENCH)
try:
    from startup import Server
finally:
    sys.path.remove(BENCH)

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


def wait_for(server: Server, check: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert server.proc.poll() is None, f"recsys serve exited: {server.lines}"
        assert time.monotonic() < deadline, f"{what} within {timeout} s: {server.lines}"
        time.sleep(0.1)


def get(server: Server, path: str, **params: Any) -> httpx.Response:
    # a new connection per request: whichever worker accepts it answers
    return httpx.get(server.base + path, params=params, timeout=30)


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
def settings(redis_url: str, redis_prefix: str, tmp_path: Path) -> dict[str, str]:
    """recsys serve's environment: the test's Redis and prefix, its own empty numba cache."""
    return {
        "REDIS_URL": redis_url,
        "RECSYS_REDIS_PREFIX": redis_prefix,
        "RECSYS_WORKERS": "2",
        # a loaded machine (the compile takes a core) must not turn answers degraded
        "RECSYS_REDIS_TIMEOUT_S": "2",
        "RECSYS_FALLBACK_PATH": str(tmp_path / "serve-fallback.json"),
        "NUMBA_CACHE_DIR": str(tmp_path / "numba"),
    }


def test_a_cold_start_answers_interpreted_then_switches_to_compiled(
    store: Store, make_client: Callable[..., TestClient], settings: dict[str, str]
) -> None:
    publish(store, "v1")
    # the reference: an in-process app, compiled (this process's cache)
    fast = make_client()
    assert fast.post("/v1/events", json={"events": EVENTS}).status_code == 202
    service = fast.app.state.service  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while "v1" not in service.versions.preloaded:
        assert time.monotonic() < deadline, "the reference app never preloaded the version"
        recs(fast, "c0")
        time.sleep(0.05)

    def reference(customer: str, params: dict[str, Any]) -> dict[str, Any]:
        return recs(fast, customer, **params)

    server = Server(settings)
    try:

        def served(customer: str, params: dict[str, Any]) -> dict[str, Any]:
            r = get(server, f"/v1/customers/{customer}/recommendations", **params)
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            return body

        def answering() -> bool:
            try:
                return bool(served("c0", {"n": 5})["items"])
            except httpx.HTTPError:
                return False

        wait_for(server, answering, "a first answer", 60)
        ready = get(server, "/readyz").json()
        assert ready["ready"] and ready["compiled"] is False, ready
        assert "recsys_compiled 0.0" in get(server, "/metrics").text
        assert server.said("not in the cache yet") is not None
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
            wait_for(
                server,
                lambda: server.said(COMPILED_LINE) is not None,
                "the compiled path",
                timeout=400,
            )
        finally:
            stop.set()
            thread.join(timeout=60)
        assert not failures, failures[:5]
        assert answered[0] > 10

        for _ in range(10):  # a new connection each: either worker may answer
            assert get(server, "/readyz").json()["compiled"] is True
        assert "recsys_compiled 1.0" in get(server, "/metrics").text
        _same(served, reference)
    finally:
        server.stop()
    assert server.proc.returncode == 0, server.lines

    # the next start finds the cache filled: compiled from the first request
    check = "from serving import jit; print(jit.cache_ready())"
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_DISABLE_JIT"}
    out = subprocess.run(
        [sys.executable, "-c", check], env=env | settings, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def test_a_failed_compile_keeps_the_interpreted_workers_and_says_why() -> None:
    import signal

    from uvicorn import Config
    from uvicorn.supervisors.multiprocess import SIGNALS

    from serving.api.supervisor import CompilingSupervisor

    saved = {sig: signal.getsignal(sig) for sig in SIGNALS}
    said: list[str] = []
    try:
        supervisor = CompilingSupervisor(Config("serving.api.main:create_app"), [], said.append)
    finally:  # uvicorn's supervisor takes over the signals: give them back to pytest
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    supervisor.phase = "compiling"
    supervisor.compiler = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    supervisor.compiler.wait()
    supervisor._switch_when_compiled()
    assert supervisor.phase == "failed"
    assert said and "failed (exit code 3)" in said[0] and "python -m serving.jit" in said[0]
    assert supervisor.processes == []  # nothing was restarted
