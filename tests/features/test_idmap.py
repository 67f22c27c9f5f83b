"""IdMap: stable ids <-> indices, extension, persistence, fingerprints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from features.idmap import IdMap


def test_from_ids_keeps_first_appearance_order_and_drops_duplicates() -> None:
    m = IdMap.from_ids(["b", "a", "b", "c", "a"])
    assert list(m.ids) == ["b", "a", "c"]
    assert len(m) == 3
    assert m.index_of(["a", "c", "zz", "b"]).tolist() == [1, 2, -1, 0]
    assert m.index_of(np.array(["c"], dtype=object)).dtype == np.int64
    assert list(m.id_of([2, 0])) == ["c", "b"]
    assert "a" in m and "zz" not in m


def test_index_of_handles_nulls_and_series() -> None:
    m = IdMap.from_ids(pl.Series(["x", None, "y"]))
    assert list(m.ids) == ["x", "y"]
    assert m.index_of(pl.Series(["y", None, "x"])).tolist() == [1, -1, 0]


def test_constructor_rejects_duplicates_and_nulls() -> None:
    with pytest.raises(ValueError, match="unique"):
        IdMap(["a", "a"])
    with pytest.raises(ValueError, match="null"):
        IdMap(pl.Series(["a", None]))


def test_extended_keeps_old_indices() -> None:
    old = IdMap.from_ids(["10", "20", "30"])
    new = old.extended(["40", "20", "05", "40"])
    assert list(new.ids) == ["10", "20", "30", "40", "05"]
    assert new.index_of(old.ids).tolist() == [0, 1, 2]
    assert old.extended(["20"]) is old  # nothing new: same map
    assert old.fingerprint() != new.fingerprint()


def test_save_load_round_trip_and_fingerprint(tmp_path: Path) -> None:
    m = IdMap.from_ids(["é", "a b", "", "z"])  # unicode, spaces, empty string are valid ids
    path = m.save(tmp_path / "ids.parquet")
    loaded = IdMap.load(path)
    assert loaded == m
    assert loaded.fingerprint() == m.fingerprint()
    assert IdMap.from_ids(["z", "é", "a b", ""]).fingerprint() != m.fingerprint()


def test_load_rejects_foreign_or_broken_files(tmp_path: Path) -> None:
    pl.DataFrame({"x": [1]}).write_parquet(tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="not an IdMap"):
        IdMap.load(tmp_path / "bad.parquet")
    pl.DataFrame({"id": ["a", "b"], "index": [0, 2]}).write_parquet(tmp_path / "gap.parquet")
    with pytest.raises(ValueError, match="0..n-1"):
        IdMap.load(tmp_path / "gap.parquet")
