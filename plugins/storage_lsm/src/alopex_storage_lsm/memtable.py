"""The memtable: recent writes in a dict, with a sorted key index built lazily for scans.

Point reads and writes touch only ``latest`` (key -> ``(seq, value)``). New keys are
appended to ``pending`` and merged into the sorted index only when a scan or a flush
needs order, so a write costs a dict update and a list extend. Versions a write
overwrites are kept in ``history`` only when an open snapshot might still read them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import islice, repeat
from operator import itemgetter
from typing import Any

from sortedcontainers import SortedList

from alopex_storage_lsm.table import MISS

Version = tuple[int, "bytes | None"]

_value = itemgetter(1)


class Memtable:
    def __init__(self, wal_number: int) -> None:
        self.latest: dict[bytes, Version] = {}
        #: key -> versions older than ``latest[key]``, ascending by seq, kept for snapshots
        self.history: dict[bytes, list[Version]] = {}
        self.index = SortedList()
        self._indexed: set[bytes] = set()
        self.pending: list[bytes] = []
        self.size = 0
        self.first_seq = 0
        self.last_seq = 0
        #: the first WAL file holding this memtable's writes (later ones follow it)
        self.wal_number = wal_number

    def __len__(self) -> int:
        return len(self.latest)

    def apply(self, seq: int, batch: Mapping[bytes, bytes | None], nbytes: int, keep: int) -> None:
        """Apply ``batch`` as version ``seq``; keep overwritten versions with seq <= ``keep``
        (the newest open snapshot, -1 if none) for the snapshots that may read them."""
        latest = self.latest
        if self.first_seq and keep >= self.first_seq:
            history = self.history
            for key, value in batch.items():
                old = latest.get(key)
                if old is not None and old[0] <= keep:
                    versions = history.get(key)
                    if versions is None:
                        history[key] = [old]
                    else:
                        versions.append(old)
                latest[key] = (seq, value)
        else:
            latest.update(zip(batch, zip(repeat(seq), batch.values()), strict=True))
        self.pending.extend(batch)
        if not self.first_seq:
            self.first_seq = seq
        self.last_seq = seq
        self.size += nbytes

    def value_at(self, key: bytes, seq: int) -> Any:
        """The newest version of ``key`` visible at ``seq`` (``None``: tombstone), or the
        ``MISS`` marker of the caller when this memtable holds none."""
        found = self.latest.get(key)
        if found is None:
            return MISS
        if found[0] <= seq:
            return found[1]
        for version_seq, value in reversed(self.history.get(key, ())):
            if version_seq <= seq:
                return value
        return MISS

    def sorted_index(self) -> SortedList:
        """The key index with every pending key merged in (call under the engine lock
        while the memtable is still written to)."""
        if self.pending:
            # dict.fromkeys dedupes in arrival order: keys written in order (a bulk load
            # by primary key) then sort in linear time
            fresh = dict.fromkeys(self.pending)
            self.pending = []
            for key in self._indexed.intersection(fresh):
                del fresh[key]
            if fresh:
                self._indexed.update(fresh)
                self.index.update(fresh)
        return self.index

    def chunk(
        self,
        start: bytes,
        end: bytes | None,
        after: bytes | None,
        reverse: bool,
        size: int,
        seq: int,
    ) -> tuple[list[bytes], list[bytes | None], bool, bytes | None]:
        """Up to ``size`` keys of ``[start, end)`` past ``after`` (in scan direction) with
        their values at ``seq``, in ascending key order; whether more keys may follow; and
        the last key examined (the next chunk's ``after``)."""
        index = self.sorted_index()
        if reverse:
            keys_it = index.irange(
                start, end if after is None else after, (True, False), reverse=True
            )
        elif after is None:
            keys_it = index.irange(start, end, (True, False))
        else:
            keys_it = index.irange(after, end, (False, False))
        keys: list[bytes] = list(islice(keys_it, size))
        more = len(keys) == size
        last = keys[-1] if keys else None
        if reverse:
            keys.reverse()
        latest = self.latest
        if seq >= self.last_seq:
            values: list[bytes | None] = list(map(_value, map(latest.__getitem__, keys)))
            return keys, values, more, last
        value_at = self.value_at
        visible: list[bytes] = []
        values = []
        for key in keys:
            value = value_at(key, seq)
            if value is not MISS:
                visible.append(key)
                values.append(value)
        return visible, values, more, last

    def versions(self, key: bytes) -> Iterator[Version]:
        """Every version of ``key`` held here, newest first."""
        yield self.latest[key]
        yield from reversed(self.history.get(key, ()))
