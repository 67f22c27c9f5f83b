"""Stable maps between external ids (strings, as the shop gives them) and internal indices.

An :class:`IdMap` is the row (customers) or column (items) order of a matrix. It is saved
beside the matrix and the model version, so a later run (or the serving side) maps the same
ids to the same indices: :meth:`IdMap.extended` appends new ids and never moves known ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import polars as pl

IdsLike = Iterable[str] | np.ndarray | pl.Series

_COLUMN = "id"


def _as_series(ids: IdsLike) -> pl.Series:
    if isinstance(ids, pl.Series):
        series = ids
    elif isinstance(ids, np.ndarray):
        series = pl.Series(_COLUMN, ids.astype(object) if ids.dtype.kind != "O" else ids)
    else:
        series = pl.Series(_COLUMN, list(ids), dtype=pl.String)
    if series.dtype != pl.String:
        series = series.cast(pl.String)
    return series.alias(_COLUMN)


class IdMap:
    """External id (str) <-> index (0..n-1). Immutable; ids are unique and never null."""

    def __init__(self, ids: IdsLike) -> None:
        series = _as_series(ids)
        if series.null_count():
            raise ValueError("IdMap: ids must not be null")
        if series.n_unique() != len(series):
            raise ValueError("IdMap: ids must be unique (use IdMap.from_ids to deduplicate)")
        self._series = series
        self._frame = pl.DataFrame(
            {_COLUMN: series, "index": pl.Series(np.arange(len(series), dtype=np.int64))}
        )

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def from_ids(cls, ids: IdsLike) -> IdMap:
        """A map of the distinct non-null ids in order of first appearance."""
        series = _as_series(ids).drop_nulls().unique(maintain_order=True)
        return cls(series)

    def extended(self, new_ids: IdsLike) -> IdMap:
        """This map plus the ids not in it yet, appended in order of first appearance.

        Known ids keep their index, so matrices built with the extended map stay aligned
        with the old rows/columns.
        """
        series = _as_series(new_ids).drop_nulls().unique(maintain_order=True)
        fresh = series.filter(~series.is_in(self._series.implode()))
        if fresh.is_empty():
            return self
        return IdMap(pl.concat([self._series, fresh]))

    # ---- lookups ---------------------------------------------------------------------------
    @property
    def ids(self) -> np.ndarray:
        """The ids in index order (numpy object array of str)."""
        return self._series.to_numpy()

    @property
    def series(self) -> pl.Series:
        """The ids in index order as a polars String series."""
        return self._series

    def index_of(self, ids: IdsLike) -> np.ndarray:
        """Indices (int64) of ``ids``; -1 for unknown or null ids. Vectorised (hash join)."""
        query = pl.DataFrame({_COLUMN: _as_series(ids)})
        joined = query.join(self._frame, on=_COLUMN, how="left", maintain_order="left")
        return joined["index"].fill_null(-1).to_numpy().astype(np.int64, copy=False)

    def id_of(self, indices: np.ndarray | Iterable[int]) -> np.ndarray:
        """External ids of ``indices`` (numpy object array)."""
        return self.ids[np.asarray(indices, dtype=np.int64)]

    def __len__(self) -> int:
        return len(self._series)

    def __contains__(self, item: object) -> bool:
        return isinstance(item, str) and bool(self._series.is_in([item]).any())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self._series.equals(other._series)

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def __repr__(self) -> str:
        return f"IdMap(n={len(self)}, fingerprint={self.fingerprint()[:12]})"

    # ---- identity and persistence ----------------------------------------------------------
    def fingerprint(self) -> str:
        """SHA-256 over the ids in index order: equal fingerprints mean identical maps."""
        digest = hashlib.sha256()
        digest.update(str(len(self)).encode())
        digest.update(b"\x1f")
        digest.update("\x1f".join(self._series.to_list()).encode("utf-8"))
        return digest.hexdigest()

    def save(self, path: str | Path) -> Path:
        """Write the map as Parquet (columns ``id``, ``index``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._frame.write_parquet(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> IdMap:
        """Read a map written by :meth:`save`; checks the indices are 0..n-1 in order."""
        frame = pl.read_parquet(path)
        if set(frame.columns) != {_COLUMN, "index"}:
            raise ValueError(f"{path}: not an IdMap file (columns {frame.columns})")
        frame = frame.sort("index")
        expected = np.arange(frame.height, dtype=np.int64)
        if not np.array_equal(frame["index"].to_numpy(), expected):
            raise ValueError(f"{path}: indices are not 0..n-1")
        return cls(frame[_COLUMN])
