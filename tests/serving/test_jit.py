"""serving.jit: the cache check, the compile command, and the interpreted kernels (numba's
NUMBA_DISABLE_JIT, what a cold start answers with) answering like the compiled ones."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from serving import jit, kernels

HERE = Path(__file__).resolve().parent


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "NUMBA_DISABLE_JIT"}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=300
    )


def cases(seed: int, count: int) -> list[tuple[Any, ...]]:
    """Random personal_top arguments (coarse scores: many ties; bans; caps)."""
    rng = np.random.default_rng(seed)
    n_items = 300
    created, stock = rng.random(n_items) * 200, rng.random(n_items) > 0.3
    cats = rng.integers(-1, 6, n_items).astype(np.int32)
    out = []
    for _ in range(count):
        n_cand, lens = int(rng.integers(0, 150)), rng.integers(0, 60, int(rng.integers(0, 4)))
        banned = np.unique(rng.integers(0, n_items, int(rng.integers(0, 40)))).astype(np.int64)
        out.append(
            (
                rng.integers(0, n_items, n_cand).astype(np.int64),
                np.round(rng.random(n_cand) * 3, 1),
                rng.integers(0, n_items, int(lens.sum())).astype(np.int64),
                np.round(rng.random(int(lens.sum())) * 2 - 0.2, 1),
                np.concatenate([[0], np.cumsum(lens)]).astype(np.int64),
                np.round(rng.random(lens.size) * 2, 1),
                1.0,
                1.2,
                created,
                np.packbits(created >= 60.0, bitorder="little"),
                100.0,
                0.1,
                np.sort(rng.choice(n_items, 3, replace=False)).astype(np.int64),
                0.2,
                stock,
                banned,
                cats,
                7,
                int(rng.integers(1, 15)),
                int(rng.integers(0, 3)),
            )
        )
    return out


def answers(seed: int, count: int) -> list[tuple[np.ndarray, ...]]:
    return [kernels.personal_top(*args) for args in cases(seed, count)]


def test_interpreted_kernels_answer_like_the_compiled_ones(tmp_path: Path) -> None:
    out = tmp_path / "interpreted.pkl"
    code = (
        f"import sys, pickle; sys.path.insert(0, {str(HERE)!r}); import test_jit; "
        "from serving import jit; assert not jit.compiled(); "
        f"pickle.dump(test_jit.answers(5, 150), open({str(out)!r}, 'wb'))"
    )
    run = _run(code, NUMBA_DISABLE_JIT="1")
    assert run.returncode == 0, run.stderr
    interpreted = pickle.loads(out.read_bytes())
    compiled = answers(5, 150)
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
