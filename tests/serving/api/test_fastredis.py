"""The lean hot-path transport: raw replies of the store's reads, failing like redis-py."""

from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio

from serving.api.fastredis import FastRedis, _Protocol


def test_raw_replies_and_everything_else_through_redis_py(
    redis_url: str, redis_prefix: str
) -> None:
    k = f"{redis_prefix}:fr"

    async def main() -> None:
        plain = redis.asyncio.Redis.from_url(redis_url)
        fast = FastRedis(redis_url, redis.asyncio.Redis.from_url(redis_url), timeout=2.0)
        await plain.set(f"{k}:s", b"\x00\x01bin")
        await plain.rpush(f"{k}:l", b"a", b"b", b"c")
        await plain.sadd(f"{k}:set", b"x", b"y")
        await plain.hset(f"{k}:h", mapping={b"f": b"1", b"g": b"2"})
        await plain.zadd(f"{k}:z", {b"m1": 1.5, b"m2": 3.0})

        got = await fast.read_raw(
            [
                ("GET", f"{k}:s"),
                ("GET", f"{k}:missing"),
                ("LRANGE", f"{k}:l", 0, 1),
                ("SMEMBERS", f"{k}:set"),
                ("HGETALL", f"{k}:h"),
                ("ZRANGE", f"{k}:z", 0, -1, "WITHSCORES"),
            ]
        )
        assert got[:3] == [b"\x00\x01bin", None, [b"a", b"b"]]
        assert sorted(got[3]) == [b"x", b"y"]
        assert got[4:] == [[b"f", b"1", b"g", b"2"], [b"m1", b"1.5", b"m2", b"3"]]
        # many concurrent requests on the one connection each get their own replies
        results = await asyncio.gather(
            *(_get(fast, f"{k}:s") for _ in range(50)), _get(fast, f"{k}:missing")
        )
        assert results == [[b"\x00\x01bin"]] * 50 + [[None]]
        # everything else goes through redis-py unchanged
        pipe = fast.pipeline(transaction=False)
        pipe.incr(f"{k}:n")
        pipe.get(f"{k}:n")
        assert await pipe.execute() == [1, b"1"]
        assert await fast.get(f"{k}:s") == b"\x00\x01bin"  # attribute delegation
        # an error reply comes back as redis-py's exception (the store raises it)
        [error] = await fast.read_raw([("LRANGE", f"{k}:s", 0, 1)])  # wrong type
        assert isinstance(error, redis.exceptions.ResponseError)
        await fast.aclose()
        await plain.aclose()

    asyncio.run(main())


async def _get(fast: FastRedis, key: str) -> list[object]:
    return await fast.read_raw([("GET", key)])


def test_unreachable_server_is_a_connection_error(tmp_path: object) -> None:
    url = "unix:///nonexistent/redis.sock"

    async def main() -> None:
        fast = FastRedis(url, redis.asyncio.Redis.from_url(url), timeout=0.5)
        with pytest.raises(redis.exceptions.ConnectionError):
            await _get(fast, "k")

    asyncio.run(main())


def test_a_server_that_stops_answering_times_out_and_the_next_call_reconnects() -> None:
    """A server that reads commands and never answers: the waiting call gets TimeoutError
    within about the timeout (the connection's watchdog), the connection is dropped, and a
    later call connects afresh."""
    connections: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        while await reader.read(1024):
            pass

    async def main() -> None:
        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        url = f"redis://127.0.0.1:{port}/0"
        fast = FastRedis(url, redis.asyncio.Redis.from_url(url), timeout=0.2)
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(redis.exceptions.TimeoutError):
            await _get(fast, "k")
        assert 0.2 <= loop.time() - start < 1.0
        with pytest.raises(redis.exceptions.TimeoutError):
            await _get(fast, "k")
        assert len(connections) == 2  # the stuck connection was dropped, not reused
        server.close()

    asyncio.run(main())


def test_a_closed_connection_fails_new_calls_at_once() -> None:
    """A call that reaches a connection already lost gets ConnectionError, never a hang."""

    async def main() -> None:
        proto = _Protocol(timeout=5.0)
        proto.abort(redis.exceptions.ConnectionError("gone"))
        waiting = proto.wait(b"*1\r\n$4\r\nPING\r\n", 1)
        with pytest.raises(redis.exceptions.ConnectionError):
            await asyncio.wait_for(waiting, 1.0)

    asyncio.run(main())
