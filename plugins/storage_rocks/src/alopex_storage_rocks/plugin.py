"""Hook implementations of alopex-storage-rocks (rocksdict is imported only when opening)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alopex import hookimpl
from alopex.registration import Backend, ConfigKey

SECTION = "storage.rocks"


@hookimpl
def alopex_storage_engines() -> Sequence[Backend[Any]]:
    def open_rocks(options: Any) -> Any:
        from alopex_storage_rocks.engine import RocksEngine

        return RocksEngine.open(options)

    return [
        Backend(
            "rocks",
            open_rocks,
            "RocksDB (rocksdict): LSM tree with WAL",
            {"persistent", "snapshots"},
        )
    ]


@hookimpl
def alopex_config_keys() -> Sequence[ConfigKey]:
    return [
        ConfigKey(SECTION, "block_cache_mb", int, 64, "block cache size in MiB"),
        ConfigKey(SECTION, "write_buffer_mb", int, 64, "memtable size in MiB"),
        ConfigKey(
            SECTION, "blob_min_kb", int, 64, "values of this size go to blob files (0: never)"
        ),
        ConfigKey(SECTION, "compression", str, "lz4", "block compression", ("none", "lz4", "zstd")),
        ConfigKey(
            SECTION, "bloom_bits_per_key", int, 10, "bloom filter bits per key (0 disables it)"
        ),
    ]
