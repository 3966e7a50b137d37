"""Hook implementations of alopex-storage-lsm (the engine is imported only when opening)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alopex import hookimpl
from alopex.registration import Backend, ConfigKey

SECTION = "storage.lsm"


@hookimpl
def alopex_storage_engines() -> Sequence[Backend[Any]]:
    def open_lsm(options: Any) -> Any:
        from alopex_storage_lsm.engine import LsmEngine

        return LsmEngine.open(options)

    return [
        Backend(
            "lsm",
            open_lsm,
            "Alopex's own LSM tree in Python: WAL, memtable, sorted tables, compaction",
            {"persistent", "snapshots"},
        )
    ]


@hookimpl
def alopex_config_keys() -> Sequence[ConfigKey]:
    return [
        ConfigKey(SECTION, "memtable_mb", int, 32, "logged bytes a memtable holds before a flush"),
        ConfigKey(SECTION, "block_kb", int, 4, "uncompressed size of a table data block in KiB"),
        ConfigKey(
            SECTION, "bloom_bits_per_key", int, 10, "bloom filter bits per key (0 disables it)"
        ),
        ConfigKey(SECTION, "compression", str, "lz4", "block compression", ("none", "lz4", "zstd")),
        ConfigKey(SECTION, "block_cache_mb", int, 64, "decoded data blocks kept, in MiB"),
        ConfigKey(
            SECTION, "compaction_trigger", int, 4, "sorted runs that start a size-tiered merge"
        ),
        ConfigKey(
            SECTION,
            "size_ratio_pct",
            int,
            10,
            "a run joins a merge of newer runs if at most this % bigger than them together",
        ),
        ConfigKey(
            SECTION,
            "max_space_amp_pct",
            int,
            100,
            "merge every run when the newer runs exceed this % of the oldest run",
        ),
    ]
