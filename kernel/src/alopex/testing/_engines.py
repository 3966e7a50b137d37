"""Open engines and databases by backend name, the way the kernel does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
