"""The one contract every model implements (in the spirit of implicit's ``RecommenderBase``).

Conventions (scikit-learn): hyper-parameters are ``__init__`` arguments stored under the same
names; ``fit`` returns ``self``; learned state ends with ``_``.

Matrices are ``scipy.sparse.csr_matrix`` of shape (n_customers, n_items) with float32
confidence values (see ``features.matrices``). Row and column indices are internal to a model
version; external ids live in the id maps saved beside the model.

All batch methods return two arrays of shape (len(rows), n): ``items`` (int32, -1 where fewer
than n items could be returned) and ``scores`` (float32, -inf where ``items`` is -1), each row
sorted by descending score.
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
        return int(self.n_items_)  # type: ignore[attr-defined]
