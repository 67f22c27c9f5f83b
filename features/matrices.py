"""Sparse customer x item matrices, their id maps and the hybrid feature matrices.

:func:`build_matrices` turns validated events (``features.schema.EVENT_SCHEMA``) into a CSR
float32 confidence matrix through :func:`features.interactions.pair_weights`, with stable id maps:
given maps keep every known id at its index and new ids are appended (sorted, so a build is
deterministic). :class:`Matrices` saves everything into one folder::

    interactions.npz                 CSR float32, customers x items
    customers.parquet, items.parquet the id maps (features.idmap.IdMap)
    item_features.npz + item_feature_names.parquet          (when built)
    customer_features.npz + customer_feature_names.parquet  (when built)
    meta.json                        config, counts, fingerprints of the id maps

Feature matrices (for LightFM): one row per id of the map, one column per feature, values 1.
Item features: ``item=<id>`` identity columns first (when asked; column i is item i, as
LightFM expects), then ``category:L<k>=<path prefix>`` per category level,
``price:q<b>`` (quantile bucket over the catalog) and ``<attribute>=<value>`` for each free
attribute column. Items missing from the catalog get only their identity column.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from features.idmap import IdMap
from features.interactions import InteractionConfig, confidence, pair_weights
from features.schema import CATEGORY_SEPARATOR

FORMAT_VERSION = 1
META = "meta.json"
MATRICES_DIR = "matrices"
"""Where ``recsys build DIR`` writes (``DIR/matrices``) and ``recsys train`` looks."""
CATALOG_CORE = ("item_id", "title", "category", "price", "in_stock", "created_at")
"""Catalog columns that are not free attributes."""


@dataclass
class Matrices:
    """A confidence matrix with its id maps and optional hybrid feature matrices."""

    interactions: sp.csr_matrix
    customers: IdMap
    items: IdMap
    item_features: sp.csr_matrix | None = None
    item_feature_names: list[str] | None = None
    customer_features: sp.csr_matrix | None = None
    customer_feature_names: list[str] | None = None
    config: InteractionConfig = field(default_factory=InteractionConfig)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shape = (len(self.customers), len(self.items))
        if self.interactions.shape != shape:
            raise ValueError(f"interactions shape {self.interactions.shape} != id maps {shape}")
        for name, matrix, names, rows in (
            ("item", self.item_features, self.item_feature_names, len(self.items)),
            ("customer", self.customer_features, self.customer_feature_names, len(self.customers)),
        ):
            if matrix is None:
                continue
            if matrix.shape[0] != rows or names is None or len(names) != matrix.shape[1]:
                raise ValueError(f"{name} features: shape {matrix.shape} does not fit the maps")

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.customers), len(self.items))

    def summary(self) -> dict[str, Any]:
        """Counts and fingerprints (what meta.json holds besides the config)."""
        n_c, n_i = self.shape
        nnz = int(self.interactions.nnz)
        out: dict[str, Any] = {
            "customers": n_c,
            "items": n_i,
            "nnz": nnz,
            "density": nnz / (n_c * n_i) if n_c and n_i else 0.0,
            "customers_fingerprint": self.customers.fingerprint(),
            "items_fingerprint": self.items.fingerprint(),
        }
        if self.item_features is not None:
            out["item_features"] = int(self.item_features.shape[1])
        if self.customer_features is not None:
            out["customer_features"] = int(self.customer_features.shape[1])
        return out

    def save(self, directory: str | Path) -> Path:
        """Write the folder described in the module doc; returns the folder."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        sp.save_npz(directory / "interactions.npz", self.interactions)
        self.customers.save(directory / "customers.parquet")
        self.items.save(directory / "items.parquet")
        for name, matrix, names in (
            ("item", self.item_features, self.item_feature_names),
            ("customer", self.customer_features, self.customer_feature_names),
        ):
            if matrix is None or names is None:
                continue
            sp.save_npz(directory / f"{name}_features.npz", matrix)
            pl.DataFrame({"feature": names}, schema={"feature": pl.String}).write_parquet(
                directory / f"{name}_feature_names.parquet"
            )
        meta = {
            "format_version": FORMAT_VERSION,
            "saved_at": datetime.now(UTC).isoformat(),
            "config": self.config.to_dict(),
            **self.summary(),
            "build": self.meta,
        }
        (directory / META).write_text(json.dumps(meta, indent=2, default=str) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Matrices:
        """Read a folder written by :meth:`save`; checks shapes and id-map fingerprints."""
        directory = Path(directory)
        meta_path = directory / META
        if not meta_path.exists():
            raise FileNotFoundError(f"{directory}: no {META} (not a matrices folder)")
        meta = json.loads(meta_path.read_text())
        customers, items = load_id_maps(directory)
        features: dict[str, Any] = {}
        for name in ("item", "customer"):
            path = directory / f"{name}_features.npz"
            if path.exists():
                features[f"{name}_features"] = sp.load_npz(path).tocsr()
                names = pl.read_parquet(directory / f"{name}_feature_names.parquet")
                features[f"{name}_feature_names"] = names["feature"].to_list()
        return cls(
            interactions=sp.load_npz(directory / "interactions.npz").tocsr(),
            customers=customers,
            items=items,
            config=InteractionConfig.from_dict(meta["config"]),
            meta=meta.get("build", {}),
            **features,
        )


def load_id_maps(directory: str | Path) -> tuple[IdMap, IdMap]:
    """The (customers, items) id maps of a matrices folder, checked against its meta.json."""
    directory = Path(directory)
    meta_path = directory / META
    if not meta_path.exists():
        raise FileNotFoundError(f"{directory}: no {META} (not a matrices folder)")
    meta = json.loads(meta_path.read_text())
    customers = IdMap.load(directory / "customers.parquet")
    items = IdMap.load(directory / "items.parquet")
    for name, idmap in (("customers", customers), ("items", items)):
        if idmap.fingerprint() != meta[f"{name}_fingerprint"]:
            raise ValueError(f"{directory}: {name} id map does not match {META}")
    return customers, items


def has_matrices(directory: str | Path) -> bool:
    """True when ``directory`` holds a saved build (its meta.json)."""
    return (Path(directory) / META).is_file()


# ---- building ------------------------------------------------------------------------------


def _id_map(
    ids: pl.Series, present: np.ndarray, given: IdMap | None, extend: bool
) -> tuple[IdMap, np.ndarray]:
    """The id map for a build and, per code of ``ids`` (sorted distinct), its index in the
    map (-1: not in the map). Given maps keep their indices; new ``present`` ids are appended
    (sorted) when extending; without a given map the present ids, sorted, are the map."""
    kept = ids.filter(pl.Series(present, dtype=pl.Boolean))
    target = np.full(len(ids), -1, dtype=np.int64)
    if given is None:
        idmap = IdMap(kept)
        target[present] = np.arange(len(kept), dtype=np.int64)
        return idmap, target
    idmap = given.extended(kept) if extend else given
    target[present] = idmap.index_of(kept)
    return idmap, target


def _is_identity(index: np.ndarray, size: int) -> bool:
    """True when ``index`` maps every code to itself and covers a map of ``size`` ids."""
    return len(index) == size and bool(np.array_equal(index, np.arange(size)))


def _csr(
    values: np.ndarray, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]
) -> sp.csr_matrix:
    """A CSR matrix with sorted indices from distinct (row, column) entries.

    Entries already in CSR order (rows, then columns, ascending: what a fresh build gives)
    become the arrays directly; any other order goes through scipy's COO conversion.
    """
    keys = rows * shape[1] + cols
    if np.all(keys[1:] > keys[:-1]):
        indptr = np.zeros(shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
        matrix = sp.csr_matrix((values, cols, indptr), shape=shape, dtype=np.float32)
    else:
        matrix = sp.csr_matrix((values, (rows, cols)), shape=shape, dtype=np.float32)
    matrix.sort_indices()
    return matrix


def build_matrices(
    events: pl.DataFrame | pl.LazyFrame,
    config: InteractionConfig | None = None,
    *,
    customers: IdMap | None = None,
    items: IdMap | None = None,
    catalog: pl.DataFrame | None = None,
    customer_attrs: pl.DataFrame | None = None,
    extend: bool = True,
    catalog_items: bool = False,
    item_identity: bool = True,
    customer_identity: bool = False,
    price_buckets: int = 5,
) -> Matrices:
    """Validated events -> :class:`Matrices` (CSR float32 customers x items + id maps).

    ``customers`` / ``items``: maps from an earlier build; known ids keep their index (ids
    absent from ``events`` keep theirs too, with an empty row/column; ``meta`` counts the
    known and new ids). With
    ``extend=False`` the maps are used as they are and interactions of unknown ids are left
    out (counted in ``meta["dropped_unknown"]``), e.g. to map test events onto train maps.
    ``catalog_items=True`` adds every catalog item to the item map (cold items get a column).
    ``catalog`` / ``customer_attrs`` also build the feature matrices (see module doc).

    The pairs come from :func:`features.interactions.pair_weights` (weights summed on integer
    codes of the sorted distinct ids); their codes are then moved to the map indices.
    """
    config = config or InteractionConfig()
    given = {"customers": customers, "items": items}
    pairs = pair_weights(events, config)
    n_pairs = pairs.matrix.nnz
    present_rows, present_cols = pairs.present()
    customer_map, row_index = _id_map(pairs.customers, present_rows, customers, extend)
    if catalog is not None and catalog_items:
        catalog_ids = catalog["item_id"].cast(pl.String).drop_nulls()
        items = (items or IdMap([])).extended(catalog_ids.unique().sort()) if extend else items
    item_map, col_index = _id_map(pairs.items, present_cols, items, extend)

    values = confidence(pairs.matrix.data, config).astype(np.float32)
    shape = (len(customer_map), len(item_map))
    if _is_identity(row_index, shape[0]) and _is_identity(col_index, shape[1]):
        # every code is its own map index (a fresh build): the pair matrix is the matrix
        matrix = sp.csr_matrix(
            (values, pairs.matrix.indices, pairs.matrix.indptr), shape=shape, dtype=np.float32
        )
        matrix.sort_indices()  # already sorted; this records it
    else:
        row_codes, col_codes = pairs.coordinates()
        rows, cols = row_index[row_codes], col_index[col_codes]
        known = (rows >= 0) & (cols >= 0)
        if not known.all():
            rows, cols, values = rows[known], cols[known], values[known]
        matrix = _csr(values, rows, cols, shape)

    meta: dict[str, Any] = {"pairs": n_pairs, "dropped_unknown": int(n_pairs - len(values))}
    for name, built in (("customers", customer_map), ("items", item_map)):
        known = given[name]
        if known is not None:  # known ids kept at their index, new ones appended
            meta[f"known_{name}"] = len(known)
            meta[f"new_{name}"] = len(built) - len(known)
    result = Matrices(
        interactions=matrix, customers=customer_map, items=item_map, config=config, meta=meta
    )
    if catalog is not None:
        result.item_features, result.item_feature_names = item_feature_matrix(
            catalog, item_map, identity=item_identity, price_buckets=price_buckets
        )
    if customer_attrs is not None:
        result.customer_features, result.customer_feature_names = customer_feature_matrix(
            customer_attrs, customer_map, identity=customer_identity
        )
    return result


# ---- feature matrices ----------------------------------------------------------------------


def _one_hot(
    idmap: IdMap, long: pl.DataFrame, identity_prefix: str | None
) -> tuple[sp.csr_matrix, list[str]]:
    """(row, feature) pairs -> binary CSR; identity columns ``<prefix>=<id>`` first."""
    n = len(idmap)
    names: list[str] = []
    row_parts: list[np.ndarray] = []
    col_parts: list[np.ndarray] = []
    if identity_prefix is not None:
        names = [f"{identity_prefix}={i}" for i in idmap.ids]
        row_parts.append(np.arange(n, dtype=np.int64))
        col_parts.append(np.arange(n, dtype=np.int64))
    long = long.unique()
    vocab = long["feature"].unique().sort()
    offset = len(names)
    names.extend(vocab.to_list())
    codes = IdMap(vocab).index_of(long["feature"]) + offset
    row_parts.append(long["row"].to_numpy().astype(np.int64))
    col_parts.append(codes)
    rows = np.concatenate(row_parts)
    cols = np.concatenate(col_parts)
    data = np.ones(len(rows), dtype=np.float32)
    matrix = sp.csr_matrix((data, (rows, cols)), shape=(n, len(names)), dtype=np.float32)
    matrix.sort_indices()
    return matrix, names


def _attribute_features(frame: pl.DataFrame, columns: list[str]) -> list[pl.DataFrame]:
    """``<column>=<value>`` rows for each free attribute column (nulls/empties skipped)."""
    parts = []
    for column in columns:
        value = pl.col(column).cast(pl.String)
        parts.append(
            frame.filter(value.is_not_null() & (value.str.len_chars() > 0)).select(
                "row", feature=pl.lit(f"{column}=") + value
            )
        )
    return parts


def _rows_for(frame: pl.DataFrame, key: str, idmap: IdMap) -> pl.DataFrame:
    """The frame's rows whose ``key`` is in the map (first row per id), with their ``row``."""
    frame = frame.with_columns(pl.col(key).cast(pl.String)).unique(key, keep="first")
    frame = frame.with_columns(row=pl.Series(idmap.index_of(frame[key])))
    return frame.filter(pl.col("row") >= 0)


def item_feature_matrix(
    catalog: pl.DataFrame,
    items: IdMap,
    *,
    identity: bool = True,
    price_buckets: int = 5,
    attributes: list[str] | None = None,
) -> tuple[sp.csr_matrix, list[str]]:
    """Item x feature CSR (float32, values 1) and the feature names; see module doc.

    ``attributes``: free attribute columns to use (default: every non-core catalog column).
    """
    if "item_id" not in catalog.columns:
        raise ValueError("catalog needs an item_id column")
    frame = _rows_for(catalog, "item_id", items)
    parts: list[pl.DataFrame] = []
    sep = CATEGORY_SEPARATOR
    if "category" in frame.columns:
        path = frame.select("row", level=pl.col("category").cast(pl.String).str.split(sep))
        path = path.filter(pl.col("level").is_not_null())
        depth = int(path["level"].list.len().max() or 0)  # type: ignore[arg-type]
        for k in range(depth):
            prefix = pl.col("level").list.slice(0, k + 1).list.join(sep)
            parts.append(
                path.filter(pl.col("level").list.len() > k).select(
                    "row", feature=pl.lit(f"category:L{k + 1}=") + prefix
                )
            )
    if "price" in frame.columns and price_buckets > 1:
        price = frame["price"].cast(pl.Float64, strict=False).to_numpy()
        valid = np.isfinite(price)
        if valid.any():
            edges = np.quantile(price[valid], np.linspace(0, 1, price_buckets + 1)[1:-1])
            bucket = np.searchsorted(edges, price[valid], side="right")
            parts.append(
                pl.DataFrame(
                    {
                        "row": frame["row"].to_numpy()[valid],
                        "feature": [f"price:q{b}" for b in bucket],
                    }
                )
            )
    if attributes is None:
        attributes = [c for c in frame.columns if c not in (*CATALOG_CORE, "row")]
    parts.extend(_attribute_features(frame, attributes))
    long = _concat_long(parts)
    return _one_hot(items, long, "item" if identity else None)


def customer_feature_matrix(
    customer_attrs: pl.DataFrame,
    customers: IdMap,
    *,
    identity: bool = False,
    attributes: list[str] | None = None,
) -> tuple[sp.csr_matrix, list[str]]:
    """Customer x feature CSR (``<attribute>=<value>``, values 1) and the feature names."""
    if "customer_id" not in customer_attrs.columns:
        raise ValueError("customer attributes need a customer_id column")
    frame = _rows_for(customer_attrs, "customer_id", customers)
    if attributes is None:
        attributes = [c for c in frame.columns if c not in ("customer_id", "row")]
    long = _concat_long(_attribute_features(frame, attributes))
    return _one_hot(customers, long, "customer" if identity else None)


def _concat_long(parts: list[pl.DataFrame]) -> pl.DataFrame:
    empty = pl.DataFrame(schema={"row": pl.Int64, "feature": pl.String})
    parts = [
        p.select(pl.col("row").cast(pl.Int64), pl.col("feature").cast(pl.String)) for p in parts
    ]
    return pl.concat([empty, *parts])
