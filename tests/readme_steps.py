"""Run the README's walk-throughs as a new user would: each step its own ``recsys`` process.

The README marks each walk-through with HTML comments, so the tests run exactly what it
shows::

    <!-- e2e: grocery file=shop.toml -->   a file the user writes (the fenced block below)
    <!-- e2e: grocery -->                  the shell steps (the fenced block below)

Shell steps may be ``recsys ...`` commands (run with this interpreter, ``-m recsys``),
``recsys serve ... &`` (started in the background on a free port, waited for) and
``curl 'http://localhost:8000/...'`` (sent with httpx to that server; the JSON answer is kept).
Anything else in a marked block is an error, so the README cannot drift from the tests.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
README_PORT = "8000"

_MARKED = re.compile(
    r"<!-- e2e: (?P<name>[\w-]+)(?: file=(?P<file>[\w./-]+))? -->\s*\n"
    r"```[a-z]*\n(?P<body>.*?)```",
    re.DOTALL,
)


@dataclass
class Walkthrough:
    """One marked walk-through: the files it writes and its shell steps."""

    name: str
    files: dict[str, str] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)


def walkthroughs(readme: Path = README) -> dict[str, Walkthrough]:
    found: dict[str, Walkthrough] = {}
    for match in _MARKED.finditer(readme.read_text(encoding="utf-8")):
        walk = found.setdefault(match["name"], Walkthrough(match["name"]))
        if match["file"]:
            walk.files[match["file"]] = match["body"]
        else:
            walk.steps += shell_lines(match["body"])
    return found


def shell_lines(body: str) -> list[str]:
    """Commands of a shell block: continuations joined, comments and blank lines dropped."""
    lines: list[str] = []
    pending = ""
    for raw in body.splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            lines.append(line)
    return lines


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class StepRunner:
    """Runs a walk-through's steps in ``workdir`` with ``env``; keeps the answers."""

    workdir: Path
    env: dict[str, str]
    timeout: float = 600.0
    port: int = field(default_factory=free_port)
    server: subprocess.Popen[bytes] | None = None
    outputs: list[str] = field(default_factory=list)
    answers: dict[str, Any] = field(default_factory=dict)

    def run(self, walk: Walkthrough) -> None:
        for name, text in walk.files.items():
            (self.workdir / name).write_text(text, encoding="utf-8")
        for step in walk.steps:
            self.step(step)

    def step(self, line: str) -> None:
        words = shlex.split(line)
        if words[0] == "recsys" and words[1:2] == ["serve"]:
            self.serve([w for w in words if w != "&"])
        elif words[0] == "recsys":
            self.recsys(words[1:])
        elif words[0] == "curl":
            self.curl(words)
        else:
            raise AssertionError(f"the README step {line!r} is not a recsys or curl command")

    def recsys(self, args: list[str]) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "recsys", *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=self.timeout,
        )
        output = done.stdout + done.stderr
        self.outputs.append(f"$ recsys {shlex.join(args)}\n{output}")
        assert done.returncode == 0, f"recsys {shlex.join(args)} failed:\n{output}"
        return output

    def serve(self, words: list[str]) -> None:
        args = [w if w != README_PORT else str(self.port) for w in words[1:]]
        self.server = subprocess.Popen(
            [sys.executable, "-m", "recsys", *args],
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.server.poll() is None, "recsys serve exited"
            try:
                if httpx.get(self.url("/readyz"), timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("recsys serve was not ready within 120 s")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def curl(self, words: list[str]) -> None:
        address = next(w for w in words[1:] if "://" in w)
        path = "/" + address.split("://", 1)[1].split("/", 1)[1]
        response = httpx.get(self.url(path), timeout=30)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        self.answers[path] = response.json()

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            os.killpg(self.server.pid, signal.SIGINT)
            try:
                self.server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.server.pid, signal.SIGKILL)
                self.server.wait()
        self.server = None
