"""Item-item models: ItemKNN (implicit's cosine / BM25 / TF-IDF neighbours) and RP3beta.

Both learn a sparse item x item similarity ``similarity_`` and score a customer as
``history @ similarity_`` (the sum of the similarities of each history item, weighted by its
confidence), exactly what implicit's item-item scorer computes; we do it for the whole batch
with one sparse product and a vectorised top-n instead of implicit's per-customer loop. Fold-in
needs nothing more: a new customer's history is scored the same way.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from recsys.models.confidence import apply_confidence, row_normalize
from recsys.models.history import HistoryScorer
from recsys.models.ranking import CHUNK_CELLS, one_hot, topn_sparse

SIMILARITIES = ("cosine", "bm25", "tfidf")


class _ItemItem(HistoryScorer):
    def _similarity(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        raise NotImplementedError

    def _learn(self, matrix: sp.csr_matrix) -> None:
        similarity = sp.csr_matrix(self._similarity(matrix), dtype=np.float32)
        similarity.sort_indices()
        self.similarity_ = similarity

    def _score(
        self, history: sp.csr_matrix, n: int, exclude: sp.csr_matrix | None
    ) -> tuple[np.ndarray, np.ndarray]:
        return topn_sparse(history @ self.similarity_, n, exclude)

    def similar_items(self, items: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        items = self._check_items(items)
        return topn_sparse(self.similarity_[items], n, one_hot(items, self.n_items))

    def _save_state(self, path: Path) -> None:
        super()._save_state(path)
        sp.save_npz(path / "similarity.npz", self.similarity_)

    def _load_state(self, path: Path) -> None:
        super()._load_state(path)
        self.similarity_ = sp.csr_matrix(sp.load_npz(path / "similarity.npz"))


class ItemKNN(_ItemItem):
    """Item neighbours from ``implicit.nearest_neighbours`` (k neighbours per item)."""

    name = "itemknn"
    libraries: ClassVar[tuple[str, ...]] = ("implicit",)

    def __init__(
        self,
        similarity: str = "cosine",
        k: int = 100,
        bm25_k1: float = 1.2,
        bm25_b: float = 0.75,
        confidence: str = "linear",
        alpha: float = 1.0,
        num_threads: int = 0,
    ) -> None:
        self.similarity = similarity
        self.k = k
        self.bm25_k1 = bm25_k1
        self.bm25_b = bm25_b
        self.confidence = confidence
        self.alpha = alpha
        self.num_threads = num_threads

    def _similarity(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        from implicit import nearest_neighbours as nn

        if self.similarity == "cosine":
            model = nn.CosineRecommender(K=self.k, num_threads=self.num_threads)
        elif self.similarity == "bm25":
            model = nn.BM25Recommender(
                K=self.k, K1=self.bm25_k1, B=self.bm25_b, num_threads=self.num_threads
            )
        elif self.similarity == "tfidf":
            model = nn.TFIDFRecommender(K=self.k, num_threads=self.num_threads)
        else:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {self.similarity!r}")
        with warnings.catch_warnings():
            # implicit's own cosine/TF-IDF weighting hands a COO matrix to its CSR check
            warnings.filterwarnings("ignore", message="Method expects CSR input")
            model.fit(matrix, show_progress=False)
        return model.similarity


class RP3beta(_ItemItem):
    """RP3beta (Paudel et al. 2017): 3-step random-walk item graph, popularity-penalised.

    ``W[i, j] = (P_iu @ P_ui)[i, j] ** alpha / popularity[j] ** beta``, top-k per row, no
    self-loops; ``P_ui`` and ``P_iu`` are the row-normalised customer->item and item->customer
    transition matrices of the (confidence-transformed) interactions.
    """

    name = "rp3beta"

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 0.5,
        k: int = 200,
        normalize: bool = False,
        confidence: str = "linear",
    ) -> None:
        self.alpha = alpha
        self.beta = beta
        self.k = k
        self.normalize = normalize
        self.confidence = confidence

    def _weighted(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        return apply_confidence(matrix, self.confidence)

    def _similarity(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        n_items = matrix.shape[1]
        p_ui = row_normalize(matrix)
        p_iu = row_normalize(sp.csr_matrix(matrix.T))
        degree = np.diff(sp.csc_matrix(matrix).indptr).astype(np.float64)
        penalty = np.zeros(n_items, dtype=np.float64)
        np.power(degree, -self.beta, out=penalty, where=degree > 0)
        penalty = penalty.astype(np.float32)
        k = max(1, min(self.k, n_items - 1))
        step = max(1, CHUNK_CELLS // max(n_items, 1))
        blocks = []
        for start in range(0, n_items, step):
            stop = min(n_items, start + step)
            dense = np.asarray((p_iu[start:stop] @ p_ui).toarray(), dtype=np.float32)
            if self.alpha != 1.0:
                np.power(dense, self.alpha, out=dense)
            dense *= penalty
            dense[np.arange(stop - start), np.arange(start, stop)] = 0.0
            blocks.append(_keep_top_k(dense, k))
        similarity = sp.csr_matrix(sp.vstack(blocks))
        similarity.eliminate_zeros()
        return row_normalize(similarity) if self.normalize else similarity


def _keep_top_k(dense: np.ndarray, k: int) -> sp.csr_matrix:
    """The k largest entries of each row as a CSR block."""
    rows, cols = dense.shape
    k = min(k, cols)
    top = (
        np.argpartition(-dense, k - 1, axis=1)[:, :k]
        if k < cols
        else np.tile(np.arange(cols), (rows, 1))
    )
    values = np.take_along_axis(dense, top, axis=1)
    return sp.csr_matrix(
        (values.ravel(), top.ravel(), np.arange(0, rows * k + 1, k)), shape=(rows, cols)
    )
