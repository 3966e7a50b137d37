"""The ``flat`` vector index: exact search by NumPy, the reference the ANN plugins are
measured against."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt

from alopex.contracts.index import (
    Ids,
    IndexOptions,
    SearchGate,
    VectorIndex,
    Vectors,
    as_ids,
    as_vectors,
    last_wins,
    unit_rows,
)
from alopex.errors import DataError, InvalidArgument


class FlatIndex(VectorIndex):
    """Brute force over a dense matrix; removal swaps the last row into the hole."""

    def __init__(self, options: IndexOptions) -> None:
        self.options = options
        self._vectors = np.empty((0, options.dim), dtype=np.float32)
        self._ids = np.empty(0, dtype=np.int64)
        self._slot: dict[int, int] = {}
        self._gate = SearchGate()  # NumPy releases the GIL in the products: searches overlap

    def _prepare(self, vectors: npt.ArrayLike, what: str = "vectors") -> Vectors:
        matrix = as_vectors(vectors, self.options.dim, what)
        if self.options.metric == "cosine":
            matrix = unit_rows(matrix)
        return matrix

    def add(self, ids: Ids, vectors: Vectors) -> None:
        ids = as_ids(ids)
        matrix = self._prepare(vectors)
        if len(ids) != len(matrix):
            raise InvalidArgument(f"{len(ids)} ids for {len(matrix)} vectors")
        ids, matrix = last_wins(ids, matrix)
        with self._gate.exclusive():
            self._remove(ids)  # already exclusive
            start = len(self._ids)
            self._vectors = np.concatenate([self._vectors, matrix])
            self._ids = np.concatenate([self._ids, ids])
            self._slot.update((int(i), start + n) for n, i in enumerate(ids))

    def remove(self, ids: Ids) -> None:
        with self._gate.exclusive():
            self._remove(as_ids(ids))

    def _remove(self, ids: Ids) -> None:
        for row_id in ids.tolist():
            slot = self._slot.pop(row_id, None)
            if slot is None:
                continue
            last = len(self._ids) - 1
            if slot != last:
                moved = int(self._ids[last])
                self._ids[slot] = moved
                self._vectors[slot] = self._vectors[last]
                self._slot[moved] = slot
            self._ids = self._ids[:last]
            self._vectors = self._vectors[:last]

    def search(
        self,
        queries: Vectors,
        k: int,
        *,
        allow: Ids | None = None,
        params: Mapping[str, int] | None = None,  # exact: nothing to tune
    ) -> tuple[Ids, npt.NDArray[np.float32]]:
        if k < 0:
            raise InvalidArgument(f"k must be >= 0, got {k}")
        q = self._prepare(queries, "queries")
        self._gate.enter()
        try:
            with np.errstate(invalid="ignore", over="ignore"):  # a NaN or inf query: NaN out
                return self._search(q, k, allow)
        finally:
            self._gate.leave()

    def _search(self, q: Vectors, k: int, allow: Ids | None) -> tuple[Ids, npt.NDArray[np.float32]]:
        matrix, ids = self._vectors, self._ids
        if allow is not None:
            mask = np.isin(ids, as_ids(allow))
            matrix, ids = matrix[mask], ids[mask]
        if self.options.metric == "l2":
            dist = (q * q).sum(1)[:, None] - 2 * q @ matrix.T + (matrix * matrix).sum(1)[None, :]
        elif self.options.metric == "cosine":
            dist = 1.0 - q @ matrix.T
        else:
            dist = -(q @ matrix.T)
        found = min(k, len(ids))
        out_ids = np.full((len(q), k), -1, dtype=np.int64)
        out_dist = np.full((len(q), k), np.inf, dtype=np.float32)
        if found:
            part = np.argpartition(dist, found - 1, axis=1)[:, :found]
            order = np.take_along_axis(dist, part, 1).argsort(axis=1, kind="stable")
            best = np.take_along_axis(part, order, 1)
            out_ids[:, :found] = ids[best]
            out_dist[:, :found] = np.take_along_axis(dist, best, 1)
        return out_ids, out_dist

    def save(self, path: Path) -> None:
        with self._gate.exclusive(), open(path, "wb") as file:
            np.savez(file, ids=self._ids, vectors=self._vectors)

    def load(self, path: Path) -> None:
        with np.load(path) as data:
            ids, vectors = data["ids"], data["vectors"]
        if vectors.shape[1] != self.options.dim:
            raise DataError(
                f"{path} holds {vectors.shape[1]}-dimensional vectors, "
                f"this index {self.options.dim}-dimensional ones"
            )
        with self._gate.exclusive():
            self._ids, self._vectors = ids, vectors
            self._slot = {int(i): n for n, i in enumerate(ids)}

    def __len__(self) -> int:
        return len(self._ids)
