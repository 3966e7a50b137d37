"""The storage contract: an ordered store of byte keys and byte values.

Keys order by unsigned bytes (``b"" < b"\\x00" < b"\\x00\\x00" < b"\\xff"``). Ranges are
half-open, ``[start, end)``; ``end=None`` means "to the last key". A write batch is a
mapping of key to value, where ``None`` deletes the key, and is applied atomically.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

#: key -> value to put, or ``None`` to delete. Applied atomically by ``StorageEngine.write``.
WriteBatch = Mapping[bytes, "bytes | None"]
KeyValue = tuple[bytes, bytes]

SYNC_MODES = ("full", "normal", "off")


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key that starts with ``prefix`` (None: no bound)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


def fsync_path(path: Path) -> None:
    """fsync a file, or a directory (which makes the names in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@attrs.frozen
class StorageOptions:
    """What a storage factory needs to open an engine.

    ``path`` is the engine's own directory inside the database directory (``None`` for an
    in-memory engine). ``sync`` is the durability mode: ``full`` fsyncs every durable write,
    ``normal`` leaves it to the OS (survives a process crash), ``off`` may lose recent
    writes in a crash. ``settings`` is the engine's own config section.
    """

    path: Path | None
    sync: str = "normal"
    settings: Mapping[str, Any] = attrs.field(factory=dict)


class StorageReader(ABC):
    """Reads shared by an engine (latest state) and its snapshots (a fixed state)."""

    @abstractmethod
    def get(self, key: bytes) -> bytes | None:
        """The value stored under ``key``, or ``None``."""

    def multi_get(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """Values for many keys at once, in the order given."""
        get = self.get
        return [get(key) for key in keys]

    @abstractmethod
    def scan(
        self, start: bytes = b"", end: bytes | None = None, *, reverse: bool = False
    ) -> Iterator[KeyValue]:
        """Pairs with ``start <= key < end`` in key order (descending if ``reverse``)."""

    def scan_prefix(self, prefix: bytes, *, reverse: bool = False) -> Iterator[KeyValue]:
        """Pairs whose key starts with ``prefix``."""
        return self.scan(prefix, prefix_end(prefix), reverse=reverse)


class Snapshot(StorageReader):
    """A consistent, unchanging view of the store as of its creation."""

    @abstractmethod
    def close(self) -> None:
        """Release the snapshot; the engine may then drop versions it kept for it."""

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StorageEngine(StorageReader):
    """An open ordered key-value store. Must be safe to call from several threads."""

    @abstractmethod
    def write(self, batch: WriteBatch, *, durable: bool) -> None:
        """Apply every put and delete in ``batch`` atomically.

        With ``durable`` (and ``sync = "full"``) the batch is on stable storage when this
        returns; a crash at any instant leaves either all of the batch or none of it.
        """

    def submit(self, batch: WriteBatch, *, durable: bool) -> Callable[[], None]:
        """Queue ``batch`` behind every batch submitted before it; return its waiter.

        The waiter returns once the batch is applied (and on stable storage, as ``write``
        promises) or raises as ``write`` would; it must be called exactly once. Batches are
        applied in submission order, and one that fails fails every batch queued behind
        it. This lets a transaction manager order commits under its lock and wait for
        them outside it, so that an engine can give many commits one fsync (group
        commit). The default writes at once.
        """
        self.write(batch, durable=durable)
        return already_done

    @abstractmethod
    def snapshot(self) -> Snapshot:
        """A consistent view that later writes do not affect."""

    @abstractmethod
    def flush(self) -> None:
        """Push buffered writes to stable storage."""

    @abstractmethod
    def close(self) -> None:
        """Flush and release every resource; the engine is unusable afterwards."""

    @abstractmethod
    def stats(self) -> dict[str, Any]:
        """Engine facts for ``alopex info``: sizes, key estimates, engine specifics."""


def already_done() -> None:
    """The waiter ``submit`` returns for a batch it wrote at once."""


StorageFactory = Callable[[StorageOptions], StorageEngine]
