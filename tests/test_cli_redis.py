"""``recsys redis status|start|stop`` and the embedded default across ``recsys`` processes:
publish in one process, serve from another; stop, then the next command restarts it with the
data. Every step is its own ``sys.executable -m recsys`` process, without ``REDIS_URL``."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import polars as pl

Env = tuple[Path, dict[str, str]]


def recsys(*args: str, env: dict[str, str], code: int = 0) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "recsys", *args],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == code, done.stdout + done.stderr
    return done.stdout + done.stderr


def python(code: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", "from serving.connection import connect\n" + code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_status_start_stop_then_the_next_command_restarts_with_the_data(
    embedded_env: Env,
) -> None:
    data_dir, env = embedded_env
    assert "running          │ no" in recsys("redis", "status", env=env)
    started = recsys("redis", "start", env=env)
    assert f"unix://{data_dir}/redis.sock" in started
    python("connect().set('kept', 'across a stop')", env)
    status = recsys("redis", "status", env=env)
    assert "running          │ yes (pid" in status and str(data_dir) in status
    assert "appendonly=yes, appendfsync=always" in status
    assert "keys             │ 1 " in status

    assert "embedded Redis stopped" in recsys("redis", "stop", env=env)
    assert not (data_dir / "redis.pid").exists() and (data_dir / "dump.rdb").exists()
    assert "running          │ no" in recsys("redis", "status", env=env)
    assert "was not running" in recsys("redis", "stop", env=env)
    # any command that needs Redis starts it again, on the same data
    assert "no new events" in recsys("export-events", "--out", str(data_dir.parent), env=env)
    assert "running          │ yes (pid" in recsys("redis", "status", env=env)
    assert python("print(connect().get('kept').decode())", env) == "across a stop"


def test_with_redis_url_status_shows_the_users_server_and_stop_refuses(
    embedded_env: Env, redis_url: str
) -> None:
    data_dir, env = embedded_env
    env = {**env, "REDIS_URL": redis_url}
    status = recsys("redis", "status", env=env)
    assert "your own server" in status and "running        │ yes" in status
    refused = recsys("redis", "stop", env=env, code=2)
    assert "REDIS_URL is set" in refused and "will not stop it" in refused
    assert "REDIS_URL is set" in recsys("redis", "start", env=env, code=2)
    assert not data_dir.exists()  # no embedded server was started


EXPERIMENT = """
name = "popularity-tiny"
[data]
synth = "tiny"
n_customers = 200
n_items = 200
n_events = 6000
source = "shop"
dir = "{data}"
[model]
name = "popularity"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_publish_then_serve_in_another_process_answers_from_the_published_version(
    embedded_env: Env, tmp_path: Path
) -> None:
    data_dir, env = embedded_env
    env = {
        **env,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "RECSYS_FALLBACK_PATH": str(tmp_path / "fallback.json"),
        "RECSYS_WORKERS": "1",
    }
    experiment = tmp_path / "popularity-tiny.toml"
    experiment.write_text(EXPERIMENT.format(data=tmp_path / "data"))
    recsys("train", str(experiment), env=env)
    recsys("promote", "--version", "1", env=env)
    published = recsys("publish", "--n-candidates", "20", env=env)
    assert "version 1 active" in published, published
    # publish has exited; its server has not
    assert "running          │ yes" in recsys("redis", "status", env=env)

    customer = str(
        pl.read_parquet(tmp_path / "data" / "events.parquet", columns=["customer_id"])[0, 0]
    )
    port = free_port()
    api = subprocess.Popen(
        [sys.executable, "-m", "recsys", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        ready: tuple[int, Any] = (0, None)
        while time.monotonic() < deadline and ready[0] != 200:
            assert api.poll() is None, "recsys serve exited"
            try:
                ready = get(f"{base}/readyz")
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.3)
        assert ready[0] == 200, ready
        status, answer = get(f"{base}/v1/customers/{customer}/recommendations?n=5")
        assert status == 200 and answer["degraded"] is False, answer
        assert answer["version"] == "1" and len(answer["items"]) == 5
    finally:
        api.terminate()
        api.wait(timeout=30)
