"""Merging sorted sources (memtables and tables) for scans and compactions.

Each source yields chunks of ascending keys with the one version a reader at ``seq``
sees (``None`` = tombstone). The merge takes from every source the keys up to the
smallest "loaded up to" bound, lets newer sources overwrite older ones in a dict, sorts
the chunk's keys once and hands out whole lists: the per-key work happens in C (dict
updates, sort, zip), which is what lets a Python engine scan a million keys a second.
When one source is left, its lists are passed through untouched.
"""

from __future__ import annotations

import heapq
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from itertools import chain, repeat
from typing import Any

from alopex_storage_lsm.memtable import Memtable
from alopex_storage_lsm.table import Table

KeyValue = tuple[bytes, bytes]
Chunk = tuple[list[bytes], list[Any]]

_FIRST, _MAX = 32, 4096


class Source:
    """A cursor over one sorted source: ``keys[lo:hi]`` are loaded and not yet taken."""

    __slots__ = ("hi", "keys", "lo", "more", "values", "want")

    def __init__(self) -> None:
        self.keys: list[bytes] = []
        self.values: list[Any] = []
        self.lo = self.hi = 0
        self.more = True
        self.want = _FIRST

    def refill(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _set(self, keys: list[bytes], values: list[Any]) -> None:
        self.keys, self.values = keys, values
        self.lo, self.hi = 0, len(keys)
        self.want = min(self.want * 2, _MAX)


class MemSource(Source):
    __slots__ = ("_after", "_end", "_lock", "_mem", "_reverse", "_seq", "_start")

    def __init__(
        self,
        mem: Memtable,
        lock: threading.RLock | None,
        start: bytes,
        end: bytes | None,
        reverse: bool,
        seq: int,
    ) -> None:
        super().__init__()
        self._mem, self._lock = mem, lock
        self._start, self._end, self._reverse, self._seq = start, end, reverse, seq
        self._after: bytes | None = None

    def refill(self) -> None:
        args = (self._start, self._end, self._after, self._reverse, self.want, self._seq)
        if self._lock is None:
            keys, values, more, last = self._mem.chunk(*args)
        else:
            with self._lock:
                keys, values, more, last = self._mem.chunk(*args)
        self.more = more
        self._after = last
        self._set(keys, values)


class TableSource(Source):
    __slots__ = ("_block", "_end", "_reverse", "_seq", "_start", "_table")

    def __init__(
        self, table: Table, start: bytes, end: bytes | None, reverse: bool, seq: int
    ) -> None:
        super().__init__()
        self._table = table
        self._start, self._end, self._reverse, self._seq = start, end, reverse, seq
        if reverse:
            last = table.blocks - 1
            self._block = last if end is None else min(last, bisect_left(table.last_keys, end))
        else:
            self._block = bisect_left(table.last_keys, start)
        self.more = table.blocks > 0 and 0 <= self._block < table.blocks

    def _visible(self, keys: list[bytes], values: list[Any], seqs: list[int] | None) -> Chunk:
        table, seq = self._table, self._seq
        if seqs is None or (table.unique and table.max_seq <= seq):
            return keys, values
        out_keys: list[bytes] = []
        out_values: list[Any] = []
        last = None
        for key, version_seq, value in zip(keys, seqs, values, strict=True):
            if version_seq <= seq and key != last:  # versions come newest first
                out_keys.append(key)
                out_values.append(value)
                last = key
        return out_keys, out_values

    def refill(self) -> None:
        table, start, end = self._table, self._start, self._end
        parts: list[Chunk] = []
        taken = 0
        done = False
        while taken < self.want and not done:
            i = self._block
            if not 0 <= i < table.blocks:
                done = True
                break
            keys, values, seqs = table.block(i)
            lo, hi = 0, len(keys)
            if self._reverse:
                if end is not None and keys[-1] >= end:
                    hi = bisect_left(keys, end)
                if keys[0] < start:
                    lo = bisect_left(keys, start, 0, hi)
                    done = True
                self._block = i - 1
            else:
                if keys[0] < start:
                    lo = bisect_left(keys, start)
                if end is not None and keys[-1] >= end:
                    hi = bisect_left(keys, end, lo)
                    done = True
                self._block = i + 1
            if lo < hi:
                if lo or hi < len(keys):
                    keys, values = keys[lo:hi], values[lo:hi]
                    seqs = None if seqs is None else seqs[lo:hi]
                part = self._visible(keys, values, seqs)
                parts.append(part)
                taken += len(part[0])
        self.more = not done and 0 <= self._block < table.blocks
        if self._reverse:
            parts.reverse()
        if len(parts) == 1:
            self._set(*parts[0])
        else:
            self._set(
                list(chain.from_iterable(p[0] for p in parts)),
                list(chain.from_iterable(p[1] for p in parts)),
            )


def _fill(source: Source) -> bool:
    """Load the source's next chunk if its current one is used up; False once exhausted."""
    while source.lo >= source.hi:
        if not source.more:
            return False
        source.refill()
    return True


def merge_chunks(
    sources: Sequence[Source], *, reverse: bool, drop_tombstones: bool
) -> Iterator[Chunk]:
    """Merged ``(keys, values)`` chunks in scan order; ``sources`` oldest first (newer
    sources win on equal keys)."""
    active = list(sources)
    while True:
        active = [s for s in active if _fill(s)]
        if not active:
            return
        if len(active) == 1:
            only = active[0]
            while _fill(only):
                keys = only.keys[only.lo : only.hi]
                values = only.values[only.lo : only.hi]
                only.lo = only.hi
                if reverse:
                    keys.reverse()
                    values.reverse()
                if drop_tombstones and None in values:
                    pairs = [(k, v) for k, v in zip(keys, values, strict=True) if v is not None]
                    keys = [k for k, _ in pairs]
                    values = [v for _, v in pairs]
                yield keys, values
            return
        bounded = [s for s in active if s.more]
        merged: dict[bytes, Any] = {}
        if reverse:
            bound = max(s.keys[s.lo] for s in bounded) if bounded else None
            for s in active:
                cut = s.lo if bound is None else bisect_left(s.keys, bound, s.lo, s.hi)
                merged.update(zip(s.keys[cut : s.hi], s.values[cut : s.hi], strict=True))
                s.hi = cut
        else:
            bound = min(s.keys[s.hi - 1] for s in bounded) if bounded else None
            for s in active:
                cut = s.hi if bound is None else bisect_right(s.keys, bound, s.lo, s.hi)
                merged.update(zip(s.keys[s.lo : cut], s.values[s.lo : cut], strict=True))
                s.lo = cut
        if drop_tombstones and None in merged.values():
            merged = {k: v for k, v in merged.items() if v is not None}
        keys = sorted(merged, reverse=reverse)
        yield keys, list(map(merged.__getitem__, keys))


def merge_pairs(sources: Sequence[Source], *, reverse: bool) -> Iterator[KeyValue]:
    for keys, values in merge_chunks(sources, reverse=reverse, drop_tombstones=True):
        yield from zip(keys, values, strict=True)


# -- compaction with snapshots --------------------------------------------------------------


def keep_versions(
    versions: list[tuple[int, Any]], snapshots: Sequence[int], bottom: bool
) -> list[tuple[int, Any]]:
    """The versions (newest first) some reader still needs: the newest one, and per open
    snapshot the newest one it sees. A tombstone is dropped when it is the oldest kept
    version of a bottom-most output (nothing older can be behind it)."""
    kept: list[tuple[int, Any]] = []
    stripe = len(snapshots) + 1
    for seq, value in versions:
        # readers that see this version: snapshots >= seq, and the latest state
        mine = min(bisect_left(snapshots, seq), stripe)
        if mine == stripe:
            continue  # a newer version serves every reader that could see this one
        kept.append((seq, value))
        stripe = mine
        if mine == 0:
            break  # every snapshot sees this one or a newer one: older ones are dead
    if bottom:
        while kept and kept[-1][1] is None:
            kept.pop()
    return kept


def _table_versions(table: Table, rank: int) -> Iterator[tuple[bytes, int, int, int, Any]]:
    """``(key, rank, position, seq, value)`` of every entry, for a heap merge."""
    position = 0
    for i in range(table.blocks):
        keys, values, seqs = table.block(i)
        n = len(keys)
        yield from zip(
            keys,
            repeat(rank),
            range(position, position + n),
            repeat(0) if seqs is None else seqs,
            values,
        )
        position += n


def merge_versions(
    tables: Sequence[Table], snapshots: Sequence[int], bottom: bool
) -> Iterator[tuple[bytes, int, Any]]:
    """Every version of ``tables`` (newest table first) that some reader needs, as
    ``(key, seq, value)`` in key order, newest version first."""
    streams = [_table_versions(table, rank) for rank, table in enumerate(tables)]
    current: bytes | None = None
    versions: list[tuple[int, Any]] = []
    for key, _, _, seq, value in heapq.merge(*streams):
        if key != current:
            if current is not None:
                for kept_seq, kept_value in keep_versions(versions, snapshots, bottom):
                    yield current, kept_seq, kept_value
            current, versions = key, []
        versions.append((seq, value))
    if current is not None:
        for kept_seq, kept_value in keep_versions(versions, snapshots, bottom):
            yield current, kept_seq, kept_value
