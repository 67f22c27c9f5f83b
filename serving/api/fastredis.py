"""A lean transport for the API's hot reads: one multiplexed Redis connection, hiredis.

redis-py's asyncio client spends ~75 us of CPU on a single GET and ~160 us on the five-command
pipeline of a recommendation request (pool locks, per-read timeouts, callbacks). This client
keeps one connection per process and pipelines every request onto it (Redis answers in
order, so a FIFO of waiting futures is enough): a request costs one packed write and one
parse. It knows nothing of keys or values: ``serving.store`` plans the commands (as words,
``("GET", key)``) and its codec decodes the raw replies (:meth:`FastRedis.read_raw`).

Only the store's reads go this way; every other call (writes, scripts) is handed to the
regular redis-py client. Failures raise redis-py's ``ConnectionError`` / ``TimeoutError``;
a timeout drops the connection (the next call reconnects), so a stuck server never leaves
replies out of order. Commands issued in the same event-loop iteration go out in one write
(auto-pipelining): under load many requests share one system call.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable
from typing import Any

import hiredis
import redis
import redis.asyncio
from redis.asyncio.connection import parse_url


class _Protocol(asyncio.Protocol):
    """Replies are matched to waiting requests in order (Redis answers in order).

    One watchdog per connection instead of a timer per request: while requests wait, it
    looks at the oldest every quarter of the timeout and drops the connection when that one
    is overdue (the replies behind it cannot come first)."""

    def __init__(self, timeout: float = 1.0) -> None:
        self.reader = hiredis.Reader(replyError=redis.exceptions.ResponseError)
        # (future, replies expected, replies so far, deadline)
        self.pending: deque[tuple[asyncio.Future[list[Any]], int, list[Any], float]] = deque()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.outgoing: list[bytes] = []  # commands of this loop iteration, sent together
        self.timeout = timeout
        self.watchdog: asyncio.TimerHandle | None = None

    def wait(self, packed: bytes, n: int) -> asyncio.Future[list[Any]]:
        """Send ``packed`` (``n`` commands); the future gets their replies."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[Any]] = loop.create_future()
        if self.closed:  # lost between the caller's check and now: nothing will answer
            fut.set_exception(redis.exceptions.ConnectionError("Redis connection lost"))
            return fut
        self.pending.append((fut, n, [], loop.time() + self.timeout))
        self.queue(packed)
        if self.watchdog is None:
            self.watchdog = loop.call_later(self.timeout / 4, self.watch)
        return fut

    def watch(self) -> None:
        self.watchdog = None
        if self.closed:
            self._fail(redis.exceptions.ConnectionError("Redis connection lost"))
            return
        if not self.pending:
            return
        loop = asyncio.get_running_loop()
        if loop.time() > self.pending[0][3]:
            self.abort(redis.exceptions.TimeoutError("Redis did not answer in time"))
            return
        self.watchdog = loop.call_later(self.timeout / 4, self.watch)

    def queue(self, packed: bytes) -> None:
        """Send ``packed`` with every other command queued in this loop iteration: under
        load, many requests share one write system call (auto-pipelining)."""
        if not self.outgoing:
            asyncio.get_running_loop().call_soon(self.flush)
        self.outgoing.append(packed)

    def flush(self) -> None:
        data, self.outgoing = b"".join(self.outgoing), []
        if data and self.transport is not None and not self.closed:
            self.transport.write(data)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        pending = self.pending
        while True:
            reply = reader.gets()
            if reply is False:
                return
            if not pending:  # a reply nobody asked for: the stream is out of step
                self.abort(redis.exceptions.ConnectionError("unexpected reply from Redis"))
                return
            fut, expected, replies, _ = pending[0]
            replies.append(reply)
            if len(replies) == expected:
                pending.popleft()
                if not fut.done():
                    fut.set_result(replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(redis.exceptions.ConnectionError(f"Redis connection lost: {exc or 'closed'}"))

    def abort(self, error: Exception) -> None:
        """Drop the connection; every waiting call gets ``error`` (a redis-py exception)."""
        if self.transport is not None:
            self.transport.abort()
        self._fail(error)

    def _fail(self, error: Exception) -> None:
        self.closed = True
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        while self.pending:
            fut, _, _, _ = self.pending.popleft()
            if not fut.done():
                fut.set_exception(error)


class FastRedis:
    """Wraps a redis-py asyncio client (every attribute but :meth:`read_raw` is its own)."""

    def __init__(self, url: str, client: redis.asyncio.Redis, timeout: float) -> None:
        self.params = parse_url(url)
        self.client = client
        self.timeout = timeout
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    async def aclose(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()
        self._proto = None
        await self.client.aclose()

    async def _connection(self) -> _Protocol:
        proto = self._proto
        if proto is not None and not proto.closed:
            return proto
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            proto = self._proto
            if proto is not None and not proto.closed:
                return proto
            self._proto = await asyncio.wait_for(self._connect(), self.timeout)
            return self._proto

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        p = self.params
        try:
            if "path" in p:
                _, proto = await loop.create_unix_connection(
                    lambda: _Protocol(self.timeout), p["path"]
                )
            else:
                _, proto = await loop.create_connection(
                    lambda: _Protocol(self.timeout), p.get("host", "localhost"), p.get("port", 6379)
                )
        except OSError as exc:
            raise redis.exceptions.ConnectionError(f"cannot connect to Redis: {exc}") from exc
        setup: list[tuple[Any, ...]] = []
        if p.get("password"):
            auth = ("AUTH", p["username"], p["password"]) if p.get("username") else None
            setup.append(auth or ("AUTH", p["password"]))
        if p.get("db"):
            setup.append(("SELECT", p["db"]))
        if setup:
            replies = await proto.wait(b"".join(map(hiredis.pack_command, setup)), len(setup))
            for reply in replies:
                if isinstance(reply, Exception):
                    raise redis.exceptions.ConnectionError(f"Redis refused setup: {reply}")
        return proto

    def read_raw(self, commands: list[tuple[Any, ...]]) -> Awaitable[list[Any]]:
        """Raw replies (hiredis: bytes, flat lists; an error reply is an exception object in
        the list) of read-only ``commands``, pipelined in one write. On a live connection
        the awaitable is the reply future itself (no coroutine frames on the hot path)."""
        proto = self._proto
        if proto is not None and not proto.closed:
            return proto.wait(b"".join(map(hiredis.pack_command, commands)), len(commands))
        return self.execute(commands)

    async def execute(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        proto = await self._connection()
        return await proto.wait(b"".join(map(hiredis.pack_command, commands)), len(commands))
