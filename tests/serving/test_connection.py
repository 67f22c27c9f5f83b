"""The embedded Redis server, with real processes: shared by every process of a data dir,
outliving the one that started it, persisted across a kill -9 of redis-server itself,
started once when several processes start at the same time, restarted over stale files."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serving.connection import (
    EmbeddedRedisError,
    connect,
    embedded_status,
    embedded_url,
    stop_embedded,
)

Env = tuple[Path, dict[str, str]]


def python(code: str, env: dict[str, str], **kwargs: object) -> subprocess.Popen[str]:
    """A separate Python process running ``code`` (connection = serving.connection)."""
    prelude = "import sys, serving.connection as connection\n"
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-c", prelude + code],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def output(code: str, env: dict[str, str]) -> str:
    proc = python(code, env)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    return out.strip()


def wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        if not Path(f"/proc/{pid}/cmdline").read_bytes():  # a zombie: gone for our purposes
            return
        time.sleep(0.02)
    raise AssertionError(f"pid {pid} still running")


SERVER_PID = "print(connection.connect().info('server')['process_id'])"


def test_a_value_written_by_one_process_is_read_by_another_after_it_exits(
    embedded_env: Env,
) -> None:
    data_dir, env = embedded_env
    assert not embedded_status(data_dir).running
    writer_pid = output("connection.connect().set('greeting', 'hello')\n" + SERVER_PID, env)
    state = embedded_status(data_dir)
    assert state.running and str(state.pid) == writer_pid  # the writer has exited, not its server
    assert (state.appendonly, state.appendfsync) == ("yes", "always")
    read = output("print(connection.connect().get('greeting').decode())\n" + SERVER_PID, env)
    assert read.splitlines() == ["hello", writer_pid]  # the same server, found again


def test_kill_9_of_the_process_that_started_the_server_keeps_it(embedded_env: Env) -> None:
    data_dir, env = embedded_env
    starter = python(
        "connection.connect().set('k', 'v')\nprint('written', flush=True)\n"
        "import time; time.sleep(60)",
        env,
    )
    assert starter.stdout is not None and starter.stdout.readline().strip() == "written"
    starter.kill()  # SIGKILL
    starter.wait(timeout=10)
    assert output("print(connection.connect().get('k').decode())", env) == "v"


@pytest.mark.parametrize("appendfsync", ["always", "no"])
def test_kill_9_of_redis_server_loses_nothing_acknowledged(
    embedded_env: Env, appendfsync: str
) -> None:
    data_dir, env = embedded_env
    env["RECSYS_REDIS_APPENDFSYNC"] = appendfsync
    first = int(
        output(
            "c = connection.connect()\n"
            "p = c.pipeline(transaction=False)\n"
            "for j in range(5000):\n    p.set(f'key:{j}', j)\n"
            "p.execute()\nc.rpush('log', 'last')\n" + SERVER_PID,
            env,
        )
    )
    assert embedded_status(data_dir).appendfsync == appendfsync
    os.kill(first, signal.SIGKILL)
    wait_gone(first)
    state = embedded_status(data_dir)
    assert not state.running and state.stale_pid and (data_dir / "redis.sock").exists()
    read = output(
        "c = connection.connect()\n"
        "print(c.dbsize(), c.get('key:4999').decode(), c.lrange('log', 0, -1))\n" + SERVER_PID,
        env,
    ).splitlines()
    assert read[0] == "5001 4999 [b'last']"
    assert int(read[1]) != first  # restarted on the same data


def test_concurrent_first_starts_give_one_server(embedded_env: Env) -> None:
    data_dir, env = embedded_env
    procs = [python(SERVER_PID, env) for _ in range(4)]
    pids = set()
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        pids.add(out.strip())
    assert len(pids) == 1
    from tests.conftest import _servers_in

    assert [str(p) for p in _servers_in(data_dir)] == list(pids)


def test_stale_pid_file_of_another_process_and_dead_socket_are_replaced(
    embedded_env: Env,
) -> None:
    data_dir, _ = embedded_env
    client = connect(embedded_url(data_dir))
    client.set("kept", "yes")
    pid = int(client.info("server")["process_id"])
    client.close()
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    # after a reboot the pid may belong to an unrelated live process, like this one
    (data_dir / "redis.pid").write_text(str(os.getpid()))
    (data_dir / "redis.sock").unlink()
    with socket.socket(socket.AF_UNIX) as dead:  # a socket file nobody listens on
        dead.bind(str(data_dir / "redis.sock"))
    try:
        client = connect(embedded_url(data_dir))
        assert client.get("kept") == b"yes"
        client.close()
    finally:
        assert stop_embedded(data_dir)
    assert not (data_dir / "redis.pid").exists() and (data_dir / "dump.rdb").exists()
    assert stop_embedded(data_dir) is False


def test_a_socket_path_too_long_or_an_unknown_fsync_mode_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(EmbeddedRedisError, match="RECSYS_REDIS_DIR"):
        embedded_url(tmp_path / ("d" * 120))
    monkeypatch.setenv("RECSYS_REDIS_APPENDFSYNC", "sometimes")
    with pytest.raises(EmbeddedRedisError, match="choose one of always, no, everysec"):
        embedded_url(tmp_path / "r")


def test_a_stale_pid_of_another_directorys_server_is_not_ours(embedded_env: Env) -> None:
    """After a reboot the pid file may name a redis-server of another data directory: the
    server is started on this one, and the other keeps running untouched."""
    data_dir, _ = embedded_env
    other_dir = data_dir.parent / "other-redis"
    client = connect(embedded_url(other_dir))
    try:
        client.set("other", "1")
        other_pid = int(client.info("server")["process_id"])
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / "redis.pid").write_text(str(other_pid))
        mine = connect(embedded_url(data_dir))
        assert mine.get("other") is None and int(mine.info("server")["process_id"]) != other_pid
        mine.close()
        assert client.get("other") == b"1"
    finally:
        client.close()
        stop_embedded(other_dir)
