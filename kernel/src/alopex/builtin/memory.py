"""The ``memory`` storage engine: a versioned sorted dict, for ``:memory:`` databases.

Point reads of the latest state hit a plain dict. Older versions are kept only while a
snapshot might need them, and dropped when the last snapshot closes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from sortedcontainers import SortedDict

from alopex.contracts.storage import (
    KeyValue,
    Snapshot,
    StorageEngine,
    StorageOptions,
    WriteBatch,
)
from alopex.errors import StorageError

# Keys resolved per lock acquisition during a scan: short scans (LIMIT 10) stay cheap,
# long ones grow to amortise the lock.
_FIRST_CHUNK, _MAX_CHUNK = 32, 2048


class MemoryEngine(StorageEngine):
    """Everything in process memory; nothing survives ``close()``."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._latest: dict[bytes, bytes] = {}
        # key -> versions in ascending sequence; (seq, None) is a tombstone
        self._versions: SortedDict = SortedDict()
        self._seq = 0
        self._snapshots: dict[int, int] = {}  # seq -> open snapshots at that seq
        self._stale: set[bytes] = set()  # keys holding versions only snapshots need

    @classmethod
    def open(cls, options: StorageOptions) -> MemoryEngine:
        return cls()

    def get(self, key: bytes) -> bytes | None:
        return self._latest.get(key)

    def multi_get(self, keys: Any) -> list[bytes | None]:
        get = self._latest.get
        return [get(key) for key in keys]

    def scan(
        self, start: bytes = b"", end: bytes | None = None, *, reverse: bool = False
    ) -> Iterator[KeyValue]:
        with self.snapshot() as snapshot:
            yield from snapshot.scan(start, end, reverse=reverse)

    def write(self, batch: WriteBatch, *, durable: bool) -> None:
        with self._lock:
            self._seq = seq = self._seq + 1
            latest, versions = self._latest, self._versions
            if not self._snapshots:
                for key, value in batch.items():
                    if value is None:
                        latest.pop(key, None)
                        versions.pop(key, None)
                    else:
                        latest[key] = value
                        versions[key] = [(seq, value)]
                return
            for key, value in batch.items():
                if value is None:
                    latest.pop(key, None)
                else:
                    latest[key] = value
                history = versions.get(key)
                if history is None:
                    versions[key] = [(seq, value)]
                else:
                    history.append((seq, value))
                self._stale.add(key)

    def snapshot(self) -> MemorySnapshot:
        with self._lock:
            seq = self._seq
            self._snapshots[seq] = self._snapshots.get(seq, 0) + 1
        return MemorySnapshot(self, seq)

    def _release(self, seq: int) -> None:
        with self._lock:
            left = self._snapshots[seq] - 1
            if left:
                self._snapshots[seq] = left
                return
            del self._snapshots[seq]
            if self._snapshots:
                return
            # Nobody can see old versions any more: keep only the newest, drop tombstones.
            for key in self._stale:
                history = self._versions.get(key)
                if history is None:
                    continue
                if history[-1][1] is None:
                    del self._versions[key]
                else:
                    del history[:-1]
            self._stale.clear()

    def _value_at(self, key: bytes, seq: int) -> bytes | None:
        history: list[tuple[int, bytes | None]] | None = self._versions.get(key)
        if history is None:
            return None
        for version_seq, value in reversed(history):
            if version_seq <= seq:
                return value
        return None

    def _chunk(
        self,
        seq: int,
        start: bytes,
        end: bytes | None,
        reverse: bool,
        after: bytes | None,
        size: int,
    ) -> tuple[list[KeyValue], bytes | None]:
        """Live pairs at ``seq`` among the next ``size`` keys past ``after``, and the
        last key examined (``None`` once the range is exhausted).

        Chunking keeps the lock short and makes scans safe against concurrent writes.
        """
        with self._lock:
            if reverse:
                keys = self._versions.irange(
                    start, end if after is None else after, (True, False), reverse=True
                )
            elif after is None:
                keys = self._versions.irange(start, end, (True, False))
            else:
                keys = self._versions.irange(after, end, (False, False))
            pairs: list[KeyValue] = []
            for examined, key in enumerate(keys, 1):
                value = self._value_at(key, seq)
                if value is not None:
                    pairs.append((key, value))
                if examined == size:
                    return pairs, key
            return pairs, None

    def flush(self) -> None:
        pass

    def close(self) -> None:
        with self._lock:
            self._latest.clear()
            self._versions.clear()

    def stats(self) -> dict[str, Any]:
        return {
            "engine": "memory",
            "keys": len(self._latest),
            "bytes": sum(len(k) + len(v) for k, v in self._latest.items()),
            "open_snapshots": sum(self._snapshots.values()),
        }


class MemorySnapshot(Snapshot):
    def __init__(self, engine: MemoryEngine, seq: int) -> None:
        self._engine = engine
        self._seq = seq
        self._open = True

    def get(self, key: bytes) -> bytes | None:
        if not self._open:
            raise StorageError("snapshot is closed")
        return self._engine._value_at(key, self._seq)

    def scan(
        self, start: bytes = b"", end: bytes | None = None, *, reverse: bool = False
    ) -> Iterator[KeyValue]:
        if not self._open:
            raise StorageError("snapshot is closed")
        after: bytes | None = None
        size = _FIRST_CHUNK
        while True:
            pairs, after = self._engine._chunk(self._seq, start, end, reverse, after, size)
            yield from pairs
            if after is None:
                return
            size = min(size * 2, _MAX_CHUNK)

    def close(self) -> None:
        if self._open:
            self._open = False
            self._engine._release(self._seq)

    def __del__(self) -> None:
        self.close()
