"""The vector index contract: approximate (or exact) nearest neighbours by row id."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from alopex.errors import DataError, InvalidArgument

METRICS = ("cosine", "l2", "inner")

Ids = npt.NDArray[np.int64]
Vectors = npt.NDArray[np.float32]


@attrs.frozen
class IndexOptions:
    """Dimension, metric and provider parameters (``m``, ``ef_construction``...)."""

    dim: int
    metric: str = "cosine"
    params: Mapping[str, Any] = attrs.field(factory=dict)


class VectorIndex(ABC):
    """Vectors keyed by int64 row id. Distances are smaller-is-closer for every metric.

    (For ``cosine`` the distance is ``1 - cosine similarity``; for ``l2`` it is the
    *squared* Euclidean distance, which ranks like the Euclidean one and needs no square
    root; for ``inner`` it is ``-inner product``.) Vectors or queries of another dimension
    than ``options.dim`` raise :class:`~alopex.errors.DataError`.

    Threads: ``search`` may be called from several threads at once and should run them
    side by side (the graph libraries release the GIL while they walk, so a second core
    serves a second search); every other method runs alone. :class:`SearchGate` does
    both.
    """

    options: IndexOptions

    @abstractmethod
    def add(self, ids: Ids, vectors: Vectors) -> None:
        """Insert or replace the vectors of ``ids`` (shape ``(n, dim)``, float32)."""

    @abstractmethod
    def remove(self, ids: Ids) -> None:
        """Forget ``ids``; unknown ids are ignored."""

    @abstractmethod
    def search(
        self,
        queries: Vectors,
        k: int,
        *,
        allow: Ids | None = None,
        params: Mapping[str, int] | None = None,
    ) -> tuple[Ids, npt.NDArray[np.float32]]:
        """The ``k`` nearest ids per query, closest first, optionally only among ``allow``.

        ``queries`` is ``(n, dim)``, or one query as a ``(dim,)`` vector (answered as
        ``n = 1``).

        ``params`` are search-time knobs for this call (``ef_search`` for HNSW, ``nprobe``
        for IVF, set by ``PRAGMA``); a provider ignores the ones it has no use for.

        Returns two ``(len(queries), k)`` arrays; where fewer than ``k`` ids qualify the
        rows are padded with id ``-1`` and distance ``inf``. Ids in ``allow`` that the
        index does not hold are ignored. A query with a NaN or infinite coordinate must
        be safe to pass, with no warning, but its answer is unspecified (its distances are
        typically NaN or inf): the kernel rejects such queries by those distances, which
        costs nothing on the common path, rather than by scanning every query first.
        """

    @abstractmethod
    def save(self, path: Path) -> None:
        """Persist to ``path`` (a file the index owns)."""

    @abstractmethod
    def load(self, path: Path) -> None:
        """Replace the contents with what ``save`` wrote."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of live vectors."""


IndexFactory = Callable[[IndexOptions], VectorIndex]


class SearchGate:
    """Searches side by side, everything else alone.

    A search calls :meth:`enter`, then :meth:`leave` in a ``finally`` (plain calls: a
    ``with`` block costs a Python call each way); whatever changes the index runs in
    ``with gate.exclusive():``, which holds new searches back (writers go first, so a
    stream of searches cannot starve them), waits for the running ones to end and runs
    alone. A search may need a *setting* of the whole index rather than of one query
    (hnswlib's ef): one wanting another value than the one in force changes it as an
    exclusive step, through ``change``; inside ``exclusive()``, :meth:`use` does that.

    A search that meets no exclusive step takes no lock (one lock each way cost ~1 us a
    query, 2% of a warm HNSW walk): it joins ``_searches`` and then looks for an
    exclusive step, which announces itself and then waits for ``_searches`` to empty.
    List appends and pops are atomic and the GIL puts the two sides in one order, so
    whichever comes second sees the other: the search backs out and waits its turn, or
    the exclusive step waits for the search.
    """

    def __init__(self, change: Callable[[int], None] | None = None, setting: int = 0) -> None:
        self.setting = setting  # the value in force
        self._change = change
        self._lock = threading.RLock()  # RLock: exclusive() may nest
        self._turn = threading.Condition(self._lock)
        self._searches: list[None] = []  # one entry per running search
        self._exclusive = 0  # threads in exclusive() or waiting to be
        self._owner: int | None = None  # the thread running exclusive()
        self._waiting = 0  # threads waiting on _turn

    def enter(self, setting: int = 0) -> None:
        """Count a search in, once no exclusive step runs or waits, at ``setting``."""
        self._searches.append(None)
        if self._exclusive or setting != self.setting:
            self.leave()
            self._enter_in_turn(setting)

    def _enter_in_turn(self, setting: int) -> None:
        with self._lock:
            while self._exclusive and self._owner != threading.get_ident():
                self._wait()
            if setting != self.setting:
                with self.exclusive():
                    self.use(setting)
            self._searches.append(None)

    def leave(self) -> None:
        self._searches.pop()
        if self._exclusive and not self._searches:  # an exclusive step may be waiting
            with self._lock:
                self._wake()

    def use(self, setting: int) -> None:
        """Put the index at ``setting`` (inside ``exclusive()``)."""
        if setting != self.setting:
            if self._change is not None:
                self._change(setting)
            self.setting = setting

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._lock:
            self._exclusive += 1
            outer = self._owner
            try:
                while self._searches and outer is None:
                    self._wait()
                self._owner = threading.get_ident()
                yield
            finally:
                self._owner = outer
                self._exclusive -= 1
                self._wake()

    def _wait(self) -> None:
        self._waiting += 1
        try:
            self._turn.wait()
        finally:
            self._waiting -= 1

    def _wake(self) -> None:
        if self._waiting:
            self._turn.notify_all()


def as_ids(ids: npt.ArrayLike) -> Ids:
    """``ids`` as a one-dimensional int64 array."""
    array = np.asarray(ids)
    if array.ndim != 1 or not (array.size == 0 or np.issubdtype(array.dtype, np.integer)):
        raise InvalidArgument(
            f"ids must be a one-dimensional array of integers, got shape {array.shape} "
            f"of {array.dtype}"
        )
    return array.astype(np.int64, copy=False)


def as_vectors(vectors: npt.ArrayLike, dim: int, what: str = "vectors") -> Vectors:
    """``vectors`` as a C-contiguous ``(n, dim)`` float32 matrix; one vector may be 1-D.

    Raises :class:`~alopex.errors.DataError` when the dimension is not ``dim``.
    """
    try:
        matrix = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise DataError(f"{what} must be numbers in an (n, {dim}) array: {err}") from err
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    if matrix.ndim != 2:
        raise DataError(f"{what} must be an (n, {dim}) array, got shape {matrix.shape}")
    if matrix.shape[1] != dim:
        raise DataError(
            f"{what} have {matrix.shape[1]} dimensions but this index holds "
            f"{dim}-dimensional vectors; pass an (n, {dim}) array"
        )
    return np.ascontiguousarray(matrix)


def unit_rows(matrix: Vectors) -> Vectors:
    """``matrix``'s rows scaled to unit length (zero rows stay zero; a NaN or inf row
    becomes NaN, silently: see ``VectorIndex.search``), as C-contiguous float32."""
    with np.errstate(invalid="ignore", over="ignore"):
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        unit = matrix / np.where(norms == 0, 1, norms)
    return np.ascontiguousarray(unit, dtype=np.float32)


def last_wins(ids: Ids, vectors: Vectors) -> tuple[Ids, Vectors]:
    """Drop all but the last occurrence of an id repeated within one ``add`` batch."""
    if len(ids) < 2:
        return ids, vectors
    _, last_from_end = np.unique(ids[::-1], return_index=True)
    if len(last_from_end) == len(ids):
        return ids, vectors
    keep = np.sort(len(ids) - 1 - last_from_end)
    return ids[keep], vectors[keep]


def exact_nearest(
    queries: Vectors, vectors: Vectors, labels: Ids, k: int, metric: str
) -> tuple[Ids, npt.NDArray[np.float32]]:
    """Brute-force ``k`` nearest ``labels`` per query, in the contract's distances
    (cosine expects unit vectors on both sides), in blocks of at most 16M cells so memory
    stays bounded; providers use it for small allow-sets and fallbacks. ``k`` <= rows."""
    with np.errstate(invalid="ignore", over="ignore"):  # a NaN or inf query: NaN out
        return _exact_nearest(queries, vectors, labels, k, metric)


def _exact_nearest(
    queries: Vectors, vectors: Vectors, labels: Ids, k: int, metric: str
) -> tuple[Ids, npt.NDArray[np.float32]]:
    squares = (vectors * vectors).sum(axis=1)
    out_ids = np.empty((len(queries), k), dtype=np.int64)
    out_dist = np.empty((len(queries), k), dtype=np.float32)
    block = max(1, (1 << 24) // max(len(labels), 1))
    for start in range(0, len(queries), block):
        part = queries[start : start + block]
        dot = part @ vectors.T
        if metric == "l2":
            dist = np.maximum((part * part).sum(axis=1)[:, None] - 2 * dot + squares, 0)
        elif metric == "cosine":
            dist = 1 - dot
        else:
            dist = -dot
        nearest = np.argpartition(dist, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(dist, nearest, 1).argsort(axis=1, kind="stable")
        best = np.take_along_axis(nearest, order, 1)
        out_ids[start : start + block] = labels[best]
        out_dist[start : start + block] = np.take_along_axis(dist, best, 1)
    return out_ids, out_dist
