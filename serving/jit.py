"""The serving kernels' compiled code: is it in numba's on-disk cache, compile it there.

The serving core (``serving.core``: its pipeline, writer and runner, with
``serving.kernels`` and the compiled decoders of ``serving.store.rawcodec``) is
``njit(cache=True)``: compiled once per machine (30-90 s on two busy cores), then
loaded from numba's cache in about a second. Where that cache lives is numba's own
rule: ``NUMBA_CACHE_DIR`` when set, else ``__pycache__`` next to the
package's source when that directory is writable, else a per-user directory
(``~/.cache/numba``); :func:`cache_dir` says which one this process uses.

``recsys serve`` asks :func:`cache_ready` before it starts its workers: when the cache
does not hold the kernels for this machine and source, the workers run the same Python
source through numba's interpreter mode (``NUMBA_DISABLE_JIT=1``, see
``serving.api.supervisor``) while ``python -m serving.jit`` compiles into the cache.
``python -m serving.jit`` is also the install-time step (``make setup`` runs it).

The check reads numba's cache index through numba's internal ``Cache`` objects (numba has
no public call for "would this load without compiling"); if those internals change, the
check answers False and the server only starts through the slower path.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numba

COMPILE_MODULE = "serving.jit"
"""``python -m serving.jit`` compiles the kernels into the cache (what the background
process of a cold start and the install step run)."""


def compiled() -> bool:
    """Whether this process runs the kernels compiled (False under ``NUMBA_DISABLE_JIT``)."""
    return not numba.config.DISABLE_JIT  # type: ignore[attr-defined]


def _modules() -> tuple[ModuleType, ...]:
    from serving import kernels
    from serving.core import pipeline, run, writer
    from serving.store import rawcodec

    return kernels, pipeline, run, writer, rawcodec


def _cached_dispatchers() -> list[Any]:
    """The kernels compiled on their own (helpers inlined into their callers have no
    cache entry of their own)."""
    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    found = []
    for module in _modules():
        for value in vars(module).values():
            if (
                isinstance(value, CPUDispatcher)
                and value.__module__ == module.__name__
                and not isinstance(getattr(value, "_cache", None), NullCache)
                and value.targetoptions.get("inline", "never") == "never"
            ):
                found.append(value)
    return found


def cache_dir() -> Path | None:
    """The directory numba caches the serving kernels in (None under NUMBA_DISABLE_JIT)."""
    if not compiled():
        return None
    dispatchers = _cached_dispatchers()
    return Path(dispatchers[0]._cache.cache_path) if dispatchers else None


def cache_ready() -> bool:
    """Whether every kernel loads from the cache without compiling: an entry for the
    current source (numba's stamp), numba version, bytecode and this machine's CPU."""
    if not compiled():
        return False
    try:
        from numba.core.registry import cpu_target

        codegen = cpu_target.target_context.codegen()
        dispatchers = _cached_dispatchers()
        for dispatcher in dispatchers:
            cache = dispatcher._cache
            index = cache._cache_file._load_index()
            if not any(cache._index_key(key[0], codegen) == key for key in index):
                return False
        return bool(dispatchers)
    except Exception:  # numba's internals moved: take the path that always answers
        return False


def compile_all() -> None:
    """Compile (or load) every kernel for the argument types the service passes."""
    from serving.core import warm

    warm.warm_up()


def main(argv: list[str]) -> int:
    """``python -m serving.jit [--nice N]``: compile the kernels into numba's cache (at
    niceness N), say where."""
    if argv[:1] == ["--nice"] and len(argv) == 2:
        os.nice(int(argv[1]))
    elif argv:
        print("usage: python -m serving.jit [--nice N]", file=sys.stderr)
        return 2
    if not compiled():
        print("NUMBA_DISABLE_JIT is set: nothing to compile", file=sys.stderr)
        return 2
    start = time.perf_counter()
    compile_all()
    print(
        f"serving kernels compiled into {cache_dir()} in {time.perf_counter() - start:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
