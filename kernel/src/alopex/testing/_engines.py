"""Open engines, indexes and databases by backend name, the way the kernel does."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alopex.contracts.index import IndexOptions, VectorIndex
from alopex.contracts.storage import StorageEngine, StorageOptions
from alopex.plugins import PluginSet
from alopex.registration import Backend


def backend(engine: str) -> Backend[Any]:
    return PluginSet.load().select("storage_engines", engine)


def open_engine(engine: str, path: Path | None, sync: str = "full") -> StorageEngine:
    record = backend(engine)
    persistent = "persistent" in record.capabilities
    engine_path = path if persistent else None
    return record.factory(StorageOptions(engine_path, sync))  # type: ignore[no-any-return]


def is_persistent(engine: str) -> bool:
    return "persistent" in backend(engine).capabilities


@functools.cache
def index_provider(name: str) -> Backend[Any]:
    # Cached: the index suite opens hundreds of indexes and the installed set is fixed.
    return PluginSet.load().select("index_providers", name)


def open_index(
    provider: str, dim: int, metric: str, params: Mapping[str, Any] | None = None
) -> VectorIndex:
    record = index_provider(provider)
    return record.factory(IndexOptions(dim, metric, dict(params or {})))  # type: ignore[no-any-return]


def is_exact(provider: str) -> bool:
    return "exact" in index_provider(provider).capabilities
