"""Hook implementations of alopex-vector-faiss (faiss is imported only when an index opens)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alopex import hookimpl
from alopex.registration import Backend


@hookimpl
def alopex_index_providers() -> Sequence[Backend[Any]]:
    def open_faiss(options: Any) -> Any:
        from alopex_vector_faiss.index import FaissIndex

        return FaissIndex(options)

    return [
        Backend(
            "faiss",
            open_faiss,
            "IVF-Flat, IVF-PQ or HNSW (faiss): approximate search, filtered, with deletes",
        )
    ]
