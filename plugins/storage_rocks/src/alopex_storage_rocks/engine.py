"""RocksDB behind the Alopex storage contract.

Two rocksdict 0.3 gaps are bridged here. Read-option bounds do not work in raw mode, so
scans seek with ``from_key`` and stop at the end bound in Python. Snapshot iterators
ignore their snapshot (point reads honour it), so a snapshot scan iterates the current
state -- pinned when the iterator is created -- and restores the keys written since the
snapshot from snapshot point reads. The engine logs which keys each write touched while
any snapshot is open.
"""

from __future__ import annotations

import heapq
import os
import threading
import weakref
from collections import deque
from collections.abc import Iterator, Sequence
from itertools import dropwhile, takewhile
from operator import itemgetter
from typing import Any, cast

import rocksdict

from alopex.contracts.storage import (
    KeyValue,
    Snapshot,
    StorageEngine,
    StorageOptions,
    WriteBatch,
)
from alopex.errors import StorageCorruption, StorageError

_COMPRESSION = {
    "none": rocksdict.DBCompressionType.none,
    "lz4": rocksdict.DBCompressionType.lz4,
    "zstd": rocksdict.DBCompressionType.zstd,
}


def _wrap(err: Exception, what: str) -> StorageError:
    text = str(err)
    if "Corruption" in text or "corrupt" in text.lower():
        return StorageCorruption(f"RocksDB reports corruption while {what}: {text}")
    return StorageError(f"RocksDB failed while {what}: {text}")


def _range(items: Any, start: bytes, end: bytes | None, reverse: bool) -> Iterator[KeyValue]:
    """Apply the half-open bound ``[start, end)`` that ``items(from_key=...)`` cannot."""
    if not reverse:
        pairs = iter(items(from_key=start))
        return pairs if end is None else takewhile(lambda pair: pair[0] < end, pairs)
    if end is None:
        pairs = iter(items(backwards=True))
    else:  # seeks to the last key <= end; end itself is excluded
        pairs = dropwhile(lambda pair: pair[0] >= end, items(backwards=True, from_key=end))
    return pairs if not start else takewhile(lambda pair: pair[0] >= start, pairs)


class RocksEngine(StorageEngine):
    def __init__(self, db: rocksdict.Rdict, path: str, sync: str) -> None:
        self._db = db
        self._path = path
        self.get = db.get  # type: ignore[method-assign]  # the hot path: no wrapper frame
        self._durable = rocksdict.WriteOptions()
        self._durable.sync = sync == "full"
        self._lazy = rocksdict.WriteOptions()
        if sync == "off":  # a property at run time, though rocksdict's stub says method
            self._durable.disable_wal = True  # type: ignore[method-assign,assignment]
            self._lazy.disable_wal = True  # type: ignore[method-assign,assignment]
        self._lock = threading.Lock()
        self._seq = 0  # writes so far
        self._begun = 0  # writes started (a snapshot's fast path needs none since)
        self._log: deque[tuple[int, tuple[bytes, ...]]] = deque()  # while snapshots are open
        self._snapshots: dict[int, int] = {}  # seq -> open snapshots
        self._live: weakref.WeakSet[RocksSnapshot] = weakref.WeakSet()
        self._closed = False

    @classmethod
    def open(cls, options: StorageOptions) -> RocksEngine:
        if options.path is None:
            raise StorageError("the rocks engine needs a directory")
        settings = options.settings
        opts = rocksdict.Options(raw_mode=True)
        opts.create_if_missing(True)
        opts.set_paranoid_checks(True)
        opts.increase_parallelism(os.cpu_count() or 2)
        opts.set_write_buffer_size(int(settings.get("write_buffer_mb", 64)) << 20)
        opts.set_compression_type(_COMPRESSION[settings.get("compression", "lz4")]())
        table = rocksdict.BlockBasedOptions()
        table.set_block_cache(rocksdict.Cache(int(settings.get("block_cache_mb", 64)) << 20))
        bits = int(settings.get("bloom_bits_per_key", 10))
        if bits:
            table.set_bloom_filter(bits, False)
            # Most point reads hit a table, not the memtable: a whole-key bloom filter on
            # the memtable skips its skip-list search (+50% gets at 1M keys, bench/kv.py).
            opts.set_memtable_prefix_bloom_ratio(0.02)
            opts.set_memtable_whole_key_filtering(True)
        # A hash index inside data blocks answers point reads without a binary search.
        table.set_data_block_index_type(rocksdict.DataBlockIndexType.binary_and_hash())
        table.set_data_block_hash_ratio(0.75)
        opts.set_block_based_table_factory(table)
        # Big values (SQL column-mirror segments) go to blob files: in a data block they
        # would make every small key sharing the block pay for reading megabytes.
        blob_kb = int(settings.get("blob_min_kb", 64))
        if blob_kb:
            opts.set_enable_blob_files(True)
            opts.set_min_blob_size(blob_kb << 10)
            opts.set_enable_blob_gc(True)
        path = str(options.path)
        try:
            db = rocksdict.Rdict(path, opts)
        except Exception as err:
            raise _wrap(err, f"opening {path!r}") from err
        return cls(db, path, options.sync)

    def get(self, key: bytes) -> bytes | None:  # replaced per instance by Rdict.get
        return self._db.get(key)  # pragma: no cover

    def multi_get(self, keys: Sequence[bytes]) -> list[bytes | None]:
        if not keys:
            return []
        return cast("list[bytes | None]", self._db.get(list(keys)))

    def scan(
        self, start: bytes = b"", end: bytes | None = None, *, reverse: bool = False
    ) -> Iterator[KeyValue]:
        return _range(self._db.items, start, end, reverse)

    def write(self, batch: WriteBatch, *, durable: bool) -> None:
        wb = rocksdict.WriteBatch(raw_mode=True)
        put, delete = wb.put, wb.delete
        for key, value in batch.items():
            if value is None:
                delete(key)
            else:
                put(key, value)
        with self._lock:
            self._begun += 1
            try:
                self._db.write(wb, self._durable if durable else self._lazy)
            except Exception as err:
                raise _wrap(err, "writing a batch") from err
            self._seq += 1
            if self._snapshots:
                self._log.append((self._seq, tuple(batch)))

    def snapshot(self) -> RocksSnapshot:
        with self._lock:
            seq = self._seq
            self._snapshots[seq] = self._snapshots.get(seq, 0) + 1
            snapshot = RocksSnapshot(self, self._db.snapshot(), seq, self._begun)
            self._live.add(snapshot)
            return snapshot

    def _scan_since(
        self, seq: int, start: bytes, end: bytes | None, reverse: bool
    ) -> tuple[Iterator[KeyValue], set[bytes]]:
        """A current-state range iterator and the keys written after ``seq`` up to it."""
        with self._lock:
            pairs = _range(self._db.items, start, end, reverse)
            changed = {key for logged, keys in self._log if logged > seq for key in keys}
        return pairs, changed

    def _release(self, seq: int) -> None:
        with self._lock:
            left = self._snapshots[seq] - 1
            if left:
                self._snapshots[seq] = left
            else:
                del self._snapshots[seq]
            oldest = min(self._snapshots, default=None)
            while self._log and (oldest is None or self._log[0][0] <= oldest):
                self._log.popleft()

    def flush(self) -> None:
        self._db.flush()
        self._db.flush_wal(True)

    def close(self) -> None:
        """Close open snapshots first: each pins the database until it is dropped."""
        if self._closed:
            return
        self._closed = True
        for snapshot in list(self._live):
            snapshot.close()
        try:
            self._db.flush()
            self._db.flush_wal(True)
        finally:
            self._db.close()

    def stats(self) -> dict[str, Any]:
        prop = self._db.property_int_value
        return {
            "engine": "rocks",
            "path": self._path,
            "estimated_keys": prop("rocksdb.estimate-num-keys"),
            "sst_bytes": prop("rocksdb.total-sst-files-size"),
            "memtable_bytes": prop("rocksdb.cur-size-all-mem-tables"),
            "live_files": len(self._db.live_files()),
            "sequence": self._db.latest_sequence_number(),
        }


class RocksSnapshot(Snapshot):
    def __init__(
        self, engine: RocksEngine, snapshot: rocksdict.Snapshot, seq: int, begun: int
    ) -> None:
        self._engine = engine
        self._snapshot: rocksdict.Snapshot | None = snapshot
        self._seq = seq
        self._begun = begun

    def get(self, key: bytes) -> bytes | None:
        engine = self._engine
        if self._snapshot is not None and engine._begun == self._begun:
            # Nothing was written since this snapshot, so the latest state is this state,
            # and Rdict.get answers a miss without the exception a snapshot read raises.
            value: bytes | None = engine._db.get(key)
            if engine._begun == self._begun:
                return value
        try:
            return self._snapshot[key]  # type: ignore[index,no-any-return]
        except Exception as err:
            if self._snapshot is None:
                raise StorageError("snapshot is closed") from None
            if str(err) == "key not found":
                return None
            raise _wrap(err, "reading a snapshot") from err

    def scan(
        self, start: bytes = b"", end: bytes | None = None, *, reverse: bool = False
    ) -> Iterator[KeyValue]:
        if self._snapshot is None:
            raise StorageError("snapshot is closed")
        pairs, changed = self._engine._scan_since(self._seq, start, end, reverse)
        if not changed:
            return pairs
        get = self.get
        restored = sorted(
            (
                (key, value)
                for key in changed
                if key >= start and (end is None or key < end) and (value := get(key)) is not None
            ),
            reverse=reverse,
        )
        unchanged = (pair for pair in pairs if pair[0] not in changed)
        return heapq.merge(unchanged, restored, key=itemgetter(0), reverse=reverse)

    def close(self) -> None:
        if self._snapshot is not None:
            self._snapshot = None
            self._engine._release(self._seq)

    def __del__(self) -> None:
        self.close()
