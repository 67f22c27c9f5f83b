"""The one contract every model implements (in the spirit of implicit's ``RecommenderBase``).

Conventions (scikit-learn): hyper-parameters are ``__init__`` arguments stored under the same
names; ``fit`` returns ``self``; learned state ends with ``_``.

Matrices are ``scipy.sparse.csr_matrix`` of shape (n_customers, n_items) with float32
confidence values (see ``features.matrices``). Row and column indices are internal to a model
version; external ids live in the id maps saved beside the model.

All batch methods return two arrays of shape (len(rows), n): ``items`` (int32, -1 where fewer
than n items could be returned) and ``scores`` (float32, -inf where ``items`` is -1), each row
sorted by descending score.

``exclude`` matrices are CSR with one row per requested customer; their *stored entries* (not
their values) name the items that must not be returned. Models are built by name with
``recsys.models.build(name, **params)``; ``RecommenderBase.load(dir)`` rebuilds any saved model.
"""

from __future__ import annotations

import json
import platform
from abc import ABC, abstractmethod
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

MANIFEST = "manifest.json"


def library_versions(*names: str) -> dict[str, str]:
    """Installed versions of the named distributions (missing ones are left out)."""
    out = {"python": platform.python_version()}
    for name in ("numpy", "scipy", *names):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


class RecommenderBase(ABC):
    """fit / recommend / recommend_history / similar_items / save / load."""

    #: distributions whose versions go into the manifest (e.g. ("implicit",))
    libraries: ClassVar[tuple[str, ...]] = ()
    #: the name ``recsys.models.build`` knows this class by
    name: ClassVar[str] = ""
    #: ``fit`` takes ``timestamps=``: the time of every training event of each (customer, item)
    #: pair, as built by ``recsys.models.sequences.event_times`` from the training events
    fit_timestamps: ClassVar[bool] = False

    # ---- learning -------------------------------------------------------------------------
    @abstractmethod
    def fit(
        self,
        interactions: sp.csr_matrix,
        item_features: sp.csr_matrix | None = None,
        customer_features: sp.csr_matrix | None = None,
    ) -> Self:
        """Learn from a customer x item confidence matrix. Returns self."""

    # ---- scoring --------------------------------------------------------------------------
    @abstractmethod
    def recommend(
        self,
        rows: np.ndarray,
        n: int,
        exclude: sp.csr_matrix | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-n items for a batch of known customers (row indices), in one vectorised call.

        ``exclude`` is a CSR matrix with one row per entry of ``rows`` (same order) whose
        non-zero columns must not be returned (typically the customers' own history).
        """

    @abstractmethod
    def recommend_history(
        self,
        history: sp.csr_matrix,
        n: int,
        exclude: sp.csr_matrix | None = None,
        customer_features: sp.csr_matrix | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fold-in: top-n for customers unseen at training time, from their interactions.

        ``history`` has one row per customer over the model's item columns. ``exclude``
        defaults to ``history`` itself.
        """

    @abstractmethod
    def similar_items(self, items: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The n most similar items to each given item (never the item itself)."""

    # ---- persistence ----------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters: every ``__init__`` argument, read back from the attribute."""
        import inspect

        sig = inspect.signature(type(self).__init__)
        return {
            name: getattr(self, name)
            for name in sig.parameters
            if name != "self" and hasattr(self, name)
        }

    def set_params(self, **params: Any) -> Self:
        """Set hyper-parameters by name (unknown names are an error); returns self."""
        valid = self.get_params()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"{type(self).__name__} has no hyper-parameter {key!r}")
            setattr(self, key, value)
        return self

    def manifest(self, id_map_fingerprint: str | None = None) -> dict[str, Any]:
        return {
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "params": self.get_params(),
            "libraries": library_versions(*self.libraries),
            "id_map_fingerprint": id_map_fingerprint,
        }

    def save(self, path: str | Path, id_map_fingerprint: str | None = None) -> Path:
        """Write the model to a directory: ``manifest.json`` plus the model's own state files."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self._save_state(path)
        (path / MANIFEST).write_text(
            json.dumps(self.manifest(id_map_fingerprint), indent=2, default=str)
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> RecommenderBase:
        """Load any saved model; the manifest names the class to rebuild."""
        import importlib

        path = Path(path)
        manifest = json.loads((path / MANIFEST).read_text())
        module_name, _, qualname = manifest["class"].rpartition(".")
        klass = getattr(importlib.import_module(module_name), qualname)
        if not (isinstance(klass, type) and issubclass(klass, RecommenderBase)):
            raise TypeError(f"{manifest['class']} is not a recsys model")
        if cls is not RecommenderBase and not issubclass(klass, cls):
            raise TypeError(f"{path} holds a {klass.__name__}, not a {cls.__name__}")
        model = klass(**manifest["params"])
        model._load_state(path)
        return model

    @abstractmethod
    def _save_state(self, path: Path) -> None:
        """Write learned state (files of the model's choosing) into ``path``."""

    @abstractmethod
    def _load_state(self, path: Path) -> None:
        """Read learned state written by ``_save_state``."""

    # ---- shared helpers -------------------------------------------------------------------
    @property
    def n_items(self) -> int:
        """Number of item columns the model was fitted on."""
        self._check_fitted()
        return int(self.n_items_)  # type: ignore[attr-defined]

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "n_items_")

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_items_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() first")

    def _check_interactions(self, interactions: sp.spmatrix) -> sp.csr_matrix:
        """Validate a training matrix; returns it as float32 CSR (no copy when already so)."""
        if not sp.issparse(interactions):
            raise TypeError("interactions must be a scipy.sparse matrix (customers x items)")
        matrix = sp.csr_matrix(interactions, dtype=np.float32)
        if matrix.nnz and (not np.isfinite(matrix.data).all() or matrix.data.min() < 0):
            raise ValueError("interactions must hold finite, non-negative confidence values")
        return matrix

    def _check_rows(self, rows: np.ndarray, exclude: sp.spmatrix | None) -> np.ndarray:
        """Validate customer row indices (and the matching exclude matrix)."""
        self._check_fitted()
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        n_customers = int(getattr(self, "n_customers_", 0))
        if rows.size and (rows.min() < 0 or rows.max() >= n_customers):
            raise IndexError(f"customer rows must be in [0, {n_customers}) (known customers)")
        self._check_columns(exclude, len(rows), "exclude")
        return rows

    def _check_history(
        self, history: sp.spmatrix, exclude: sp.spmatrix | None
    ) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """Validate a fold-in history; ``exclude`` defaults to the history itself."""
        self._check_fitted()
        if not sp.issparse(history):
            raise TypeError("history must be a scipy.sparse matrix (customers x items)")
        history = sp.csr_matrix(history, dtype=np.float32)
        self._check_columns(history, history.shape[0], "history")
        if exclude is None:
            exclude = history
        self._check_columns(exclude, history.shape[0], "exclude")
        return history, sp.csr_matrix(exclude)

    def _check_columns(self, matrix: sp.spmatrix | None, rows: int, what: str) -> None:
        if matrix is None:
            return
        if not sp.issparse(matrix):
            raise TypeError(f"{what} must be a scipy.sparse matrix")
        if matrix.shape != (rows, self.n_items):
            raise ValueError(f"{what} has shape {matrix.shape}; expected ({rows}, {self.n_items})")

    def _check_items(self, items: np.ndarray) -> np.ndarray:
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64).reshape(-1)
        if items.size and (items.min() < 0 or items.max() >= self.n_items):
            raise IndexError(f"item indices must be in [0, {self.n_items})")
        return items
