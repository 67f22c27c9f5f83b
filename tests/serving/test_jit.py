"""serving.jit: the cache check, the compile command, and the interpreted kernels (numba's
NUMBA_DISABLE_JIT, what a cold start answers with) answering like the compiled ones."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
from test_kernels import random_cases

from serving import jit

HERE = Path(__file__).resolve().parent


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "NUMBA_DISABLE_JIT"}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=300
    )


def answers(seed: int, count: int) -> list[tuple[np.ndarray, ...]]:
    """personal_top on test_kernels' random requests (also run by the interpreted side)."""
    return [case.top() for case in random_cases(seed, count)]


def test_interpreted_kernels_answer_like_the_compiled_ones(tmp_path: Path) -> None:
    out = tmp_path / "interpreted.pkl"
    code = (
        f"import sys, pickle; sys.path.insert(0, {str(HERE)!r}); import test_jit; "
        "from serving import jit; assert not jit.compiled(); "
        f"pickle.dump(test_jit.answers(5, 200), open({str(out)!r}, 'wb'))"
    )
    run = _run(code, NUMBA_DISABLE_JIT="1")
    assert run.returncode == 0, run.stderr
    interpreted = pickle.loads(out.read_bytes())
    compiled = answers(5, 200)
    assert jit.compiled()
    for (i_items, i_score, i_seed, i_chosen), (items, score, seed, chosen) in zip(
        interpreted, compiled, strict=True
    ):
        assert i_items.tolist() == items.tolist()
        assert i_seed.tolist() == seed.tolist()
        assert i_chosen.tolist() == chosen.tolist()
        np.testing.assert_allclose(i_score, score, rtol=1e-12)


def test_an_empty_cache_is_not_ready(tmp_path: Path) -> None:
    code = "from serving import jit; print(jit.cache_ready(), jit.cache_dir())"
    run = _run(code, NUMBA_CACHE_DIR=str(tmp_path))
    assert run.returncode == 0, run.stderr
    ready, where = run.stdout.split()
    assert ready == "False"
    assert Path(where).parent == tmp_path  # numba's own layout under NUMBA_CACHE_DIR


def test_the_compile_command_refuses_what_it_cannot_do() -> None:
    code = "import sys; from serving import jit; sys.exit(jit.main(sys.argv[1:]))"
    run = _run(code, NUMBA_DISABLE_JIT="1")
    assert run.returncode == 2
    assert "NUMBA_DISABLE_JIT is set" in run.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "serving.jit", "--fast"], capture_output=True, text=True
    )
    assert bad.returncode == 2
    assert "usage: python -m serving.jit" in bad.stderr
