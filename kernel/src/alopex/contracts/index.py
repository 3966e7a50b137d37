"""The vector index contract: approximate (or exact) nearest neighbours by row id."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

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

    (For ``cosine`` the distance is ``1 - cosine similarity``; for ``inner`` it is
    ``-inner product``.)
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
        self, queries: Vectors, k: int, *, allow: Ids | None = None
    ) -> tuple[Ids, npt.NDArray[np.float32]]:
        """The ``k`` nearest ids per query (``-1`` pads), optionally only among ``allow``."""

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
