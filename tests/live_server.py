"""The API behind a real HTTP server, for tests that need one (paths with percent-escapes)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import httpx
import uvicorn

from serving.api.main import create_app
from serving.settings import Settings


@contextlib.contextmanager
def live_api(settings: Settings) -> Iterator[httpx.Client]:
    """The app served by uvicorn (httptools, as ``recsys serve`` runs it) on a free local
    port, in a thread; yields an httpx client for it.

    For paths holding percent-escapes: Starlette's TestClient decodes the path twice
    (``a%252Fb`` reaches the app as ``a/b``), a real server decodes it once."""
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=0, http="httptools", log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=30)
