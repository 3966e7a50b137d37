"""Hook implementations of alopex-vector-hnsw (hnswlib is imported only when an index opens)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alopex import hookimpl
from alopex.registration import Backend


@hookimpl
def alopex_index_providers() -> Sequence[Backend[Any]]:
    def open_hnsw(options: Any) -> Any:
        from alopex_vector_hnsw.index import HnswIndex

        return HnswIndex(options)

    return [
        Backend(
            "hnswlib",
            open_hnsw,
            "HNSW graph (hnswlib): approximate search, filtered, with deletes and slot reuse",
        )
    ]
