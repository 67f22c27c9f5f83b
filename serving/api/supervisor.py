"""A cold start that answers at once: interpreted workers now, compiled workers later.

When numba's cache does not hold the serving kernels yet (a new machine, container or
install: see ``serving.jit``), compiling them takes 30-90 s. Instead of making the first
requests wait, ``recsys serve`` starts its uvicorn workers with ``NUMBA_DISABLE_JIT=1``
(numba's interpreter mode: the same Python source, no compilation; the storefront's
compiled fast path stays off, so every request takes the general path) and runs
``python -m serving.jit`` in a background process at a lower CPU priority. When that
process has filled the cache, :class:`CompilingSupervisor` replaces the workers one at a
time with uvicorn's own rolling restart (``Multiprocess.restart_all``: the replacement is
started and must report that it serves before the old worker gets SIGTERM and finishes
its requests), so some worker always accepts on the shared socket and no request is lost.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from socket import socket

from uvicorn import Config
from uvicorn.supervisors.multiprocess import Multiprocess

from serving import jit

DISABLE_JIT = "NUMBA_DISABLE_JIT"
COMPILED_LINE = "compiled path active in every worker"
"""What the supervisor says once every worker runs compiled."""
COMPILE_NICE = 10
"""The background compile runs at this niceness: the workers' requests come first."""
COMPILE_AFTER_S = 10.0
"""The compile starts when every interpreted worker serves, or after this long."""


def start_compile() -> subprocess.Popen[bytes]:
    """``python -m serving.jit`` in the background, niced, with the JIT on."""
    env = {k: v for k, v in os.environ.items() if k != DISABLE_JIT}
    return subprocess.Popen(
        [sys.executable, "-m", jit.COMPILE_MODULE, "--nice", str(COMPILE_NICE)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )


class CompilingSupervisor(Multiprocess):
    """uvicorn's worker supervisor, with interpreted workers until the compile finishes.

    Phases: the interpreted workers start alone (nothing competes with them for the CPU);
    once they all serve (or after ``COMPILE_AFTER_S``) the niced compile starts; when it
    has succeeded, the rolling restart brings up compiled workers. If the compile fails,
    the interpreted workers go on answering and the supervisor says why.
    """

    def __init__(
        self, config: Config, sockets: list[socket], say: Callable[[str], None] = print
    ) -> None:
        super().__init__(config, sockets)
        self.say = say
        self.started_at = time.monotonic()
        self.compiler: subprocess.Popen[bytes] | None = None
        self.phase = "starting"  # starting -> compiling -> compiled | failed

    def run(self) -> None:
        os.environ[DISABLE_JIT] = "1"  # the workers spawned now inherit it
        try:
            super().run()
        finally:
            if self.compiler is not None and self.compiler.poll() is None:
                self.compiler.terminate()
                self.compiler.wait()

    def keep_subprocess_alive(self) -> None:
        super().keep_subprocess_alive()  # a worker that died is replaced as it was
        if self.should_exit.is_set():
            return
        if self.phase == "starting":
            waited = time.monotonic() - self.started_at
            if waited > COMPILE_AFTER_S or all(p.is_ready(timeout=1) for p in self.processes):
                self.compiler = start_compile()
                self.phase = "compiling"
        elif self.phase == "compiling":
            self._switch_when_compiled()

    def _switch_when_compiled(self) -> None:
        assert self.compiler is not None
        code = self.compiler.poll()
        if code is None:
            return
        if code != 0:
            self.phase = "failed"
            self.say(
                f"compiling the serving kernels failed (exit code {code}): the workers keep "
                "answering through the interpreter; run `python -m serving.jit` to see why"
            )
            return
        os.environ.pop(DISABLE_JIT, None)  # from now on workers start compiled
        before = list(self.processes)
        self.restart_all()
        if not any(p in before for p in self.processes):
            self.phase = "compiled"
            elapsed = time.monotonic() - self.started_at
            self.say(f"{COMPILED_LINE} ({elapsed:.1f} s after start)")
        # else a replacement was not ready in time: restart_all is tried again next tick


def serve(config: Config, say: Callable[[str], None] = print) -> None:
    """Run uvicorn's workers under :class:`CompilingSupervisor` until interrupted."""
    sock = config.bind_socket()
    try:
        CompilingSupervisor(config, [sock], say).run()
    finally:
        sock.close()
        if config.uds and os.path.exists(config.uds):
            os.remove(config.uds)
