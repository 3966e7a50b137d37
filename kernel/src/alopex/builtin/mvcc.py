"""The ``mvcc`` transaction manager: snapshot isolation with optimistic validation.

Reads come from a storage snapshot taken at a transaction's first read; writes are
buffered in a dict. At commit, under one lock, the write set is checked against the write
sets of transactions that committed after the snapshot: any overlap loses (first committer
wins) with :class:`~alopex.errors.TransactionConflict`. The winner is queued to storage
under the lock and waited for outside it (group commit: see ``StorageEngine.submit``).
Write skew is possible, as in every snapshot-isolation database; ``read(key,
for_update=True)`` adds a read to the checked set to prevent it (see
docs/architecture.md#isolation).
"""

from __future__ import annotations

import heapq
import threading
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping
from functools import partial
from operator import itemgetter
from typing import Any

from alopex.contracts.consensus import Consensus
from alopex.contracts.storage import KeyValue, Snapshot, StorageEngine
from alopex.contracts.transaction import Derive, Transaction, TransactionManager
from alopex.errors import (
    InterfaceError,
    ReadOnlyTransaction,
    StorageError,
    TransactionClosed,
    TransactionConflict,
)


class MvccTransactionManager(TransactionManager):
    """Orders commits under one lock and waits for storage outside it.

    A commit is validated, numbered and queued to consensus under the lock; the lock is
    released while storage applies it (and fsyncs), so concurrent commits can share one
    fsync in an engine that groups them. Storage applies queued batches in commit order,
    so "applied" is always a prefix of the commit order: a snapshot starts at the last
    applied commit, and validation checks every commit after that, applied or not.
    """

    def __init__(
        self, engine: StorageEngine, consensus: Consensus, settings: dict[str, Any] | None = None
    ) -> None:
        self._engine = engine
        self._consensus = consensus
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._seq = 0  # commits ordered so far
        self._applied = 0  # commits storage has applied (a prefix): what a snapshot sees
        # (commit seq, keys written) for commits a live snapshot may predate
        self._recent: deque[tuple[int, Collection[bytes]]] = deque()
        # commit seq -> writes, for commits queued but not yet applied
        self._queued: dict[int, Mapping[bytes, bytes | None]] = {}
        self._active: dict[int, int] = {}  # snapshot seq -> live read-write transactions
        self._failed: BaseException | None = None
        self._closed = False

    @classmethod
    def open(
        cls, engine: StorageEngine, consensus: Consensus, settings: dict[str, Any]
    ) -> MvccTransactionManager:
        return cls(engine, consensus, settings)

    def begin(self, *, readonly: bool = False) -> MvccTransaction:
        if self._closed:
            raise InterfaceError("the database is closed")
        return MvccTransaction(self, readonly)

    def apply(self, batch: Mapping[bytes, bytes | None]) -> None:
        with self._lock:
            settle = self._queue_locked(batch)
        settle()

    def apply_if(
        self, key: bytes, expected: bytes | None, batch: Mapping[bytes, bytes | None]
    ) -> bool:
        with self._lock:
            self._check_open_locked()
            if self._latest_locked(key) != expected:
                return False
            settle = self._queue_locked(batch)
        settle()
        return True

    def close(self) -> None:
        """Refuse new work (storage's own close waits for the commits it has queued)."""
        with self._lock:
            self._closed = True
            self._settled.notify_all()

    # -- the commit pipeline ----------------------------------------------------------------

    def _check_open_locked(self) -> None:
        if self._closed:
            raise InterfaceError("the database is closed")
        if self._failed is not None:
            raise StorageError(
                f"an earlier commit failed to reach storage ({self._failed}); nothing is "
                "committed after it -- reopen the database"
            )

    def _latest_locked(self, key: bytes) -> bytes | None:
        """The latest committed value of ``key``, counting commits not yet applied."""
        for seq, writes in reversed(self._queued.items()):
            if key in writes and seq > self._applied:
                return writes[key]
        return self._engine.get(key)

    def _queue_locked(self, writes: Mapping[bytes, bytes | None]) -> Callable[[], None]:
        """Number ``writes`` as the next commit and queue it; return what waits for it."""
        self._check_open_locked()
        wait = self._consensus.submit(writes, durable=True)  # raises: nothing was queued
        self._seq = seq = self._seq + 1
        self._queued[seq] = writes
        self._recent.append((seq, writes.keys()))
        return partial(self._settle, seq, wait)

    def _settle(self, seq: int, wait: Callable[[], None]) -> None:
        """Wait (without the lock) until storage applied commit ``seq``, then publish it.

        If the wait raises -- storage failed, or an interrupt left the outcome unknown --
        no later commit may build on it: the manager refuses commits until reopened.
        """
        failed: BaseException | None = None
        try:
            wait()
        except BaseException as err:
            failed = err
            raise
        finally:
            with self._lock:
                if failed is None:
                    self._applied = max(self._applied, seq)
                elif self._failed is None:
                    self._failed = failed
                del self._queued[seq]
                self._settled.notify_all()
                self._prune_locked()

    def _prune_locked(self) -> None:
        """Drop write sets that every live snapshot already includes."""
        oldest = min(self._active, default=self._applied)
        recent = self._recent
        while recent and recent[0][0] <= oldest:
            recent.popleft()

    # -- used by MvccTransaction ----------------------------------------------------------

    def _snapshot_for(self, tx: MvccTransaction) -> Snapshot:
        with self._lock:
            if self._closed:
                raise InterfaceError("the database is closed")
            if not tx.readonly:
                # A writer waits for the commits already queued: a snapshot without them
                # would be doomed to conflict on any key they wrote. (After a failed
                # commit nothing will be applied; reads go on, commits are refused.)
                queued = self._seq
                while self._applied < queued and self._failed is None and not self._closed:
                    self._settled.wait()
                if self._closed:
                    raise InterfaceError("the database is closed")
            # Storage holds at least the first ``_applied`` commits; a commit it applied
            # since counts as concurrent (checked at commit), never as seen-and-skipped.
            snapshot = self._engine.snapshot()
            tx._start = start = self._applied
            if not tx.readonly:
                self._active[start] = self._active.get(start, 0) + 1
        return snapshot

    def _commit(self, tx: MvccTransaction) -> None:
        writes = tx._writes
        with self._lock:
            self._check_open_locked()
            if tx._start >= 0 and self._seq != tx._start:
                checked = writes.keys() | tx._for_update if tx._for_update else writes.keys()
                for seq, keys in reversed(self._recent):
                    if seq <= tx._start:
                        break
                    if not checked.isdisjoint(keys):
                        key = next(k for k in checked if k in keys)
                        raise TransactionConflict(
                            f"transaction conflict on key {key[:64]!r}: another transaction "
                            "committed a write to it after this one's snapshot; nothing was "
                            "applied, retry the transaction"
                        )
            if tx._derive is not None:
                derived = tx._derive(self._latest_locked)
                if derived:
                    writes = {**writes, **derived}
            settle = self._queue_locked(writes)
        settle()

    def _finish(self, tx: MvccTransaction) -> None:
        if tx._snapshot is None:
            return
        tx._snapshot.close()
        tx._snapshot = None
        if tx.readonly:
            return
        with self._lock:
            left = self._active[tx._start] - 1
            if left:
                self._active[tx._start] = left
            else:
                del self._active[tx._start]
            self._prune_locked()


class MvccTransaction(Transaction):
    """One transaction; use it from one thread at a time."""

    __slots__ = (
        "_derive",
        "_done",
        "_for_update",
        "_manager",
        "_snapshot",
        "_start",
        "_writes",
        "readonly",
    )

    def __init__(self, manager: MvccTransactionManager, readonly: bool) -> None:
        self._manager = manager
        self.readonly = readonly
        self._writes: dict[bytes, bytes | None] = {}
        self._for_update: set[bytes] | None = None
        self._snapshot: Snapshot | None = None
        self._start = -1
        self._done = False
        self._derive: Derive | None = None

    @property
    def finished(self) -> bool:
        return self._done

    def _view(self) -> Snapshot:
        if self._done:
            raise TransactionClosed("the transaction is finished; start a new one")
        snapshot = self._snapshot
        if snapshot is None:
            snapshot = self._snapshot = self._manager._snapshot_for(self)
        return snapshot

    def snapshot_sequence(self) -> int:
        """The number of commits this transaction sees (taking its snapshot if needed)."""
        self._view()
        return self._start

    def read(self, key: bytes, *, for_update: bool = False) -> bytes | None:
        if for_update and not self.readonly:
            if self._for_update is None:
                self._for_update = set()
            self._for_update.add(key)
        writes = self._writes
        if key in writes:
            return writes[key]
        return self._view().get(key)

    def read_many(self, keys: list[bytes]) -> list[bytes | None]:
        snapshot = self._view()
        writes = self._writes
        if not writes:
            return snapshot.multi_get(keys)
        values = snapshot.multi_get([k for k in keys if k not in writes])
        it = iter(values)
        return [writes[k] if k in writes else next(it) for k in keys]

    def read_range(
        self, start: bytes, end: bytes | None, *, reverse: bool = False
    ) -> Iterator[KeyValue]:
        stored = self._view().scan(start, end, reverse=reverse)
        own = sorted(
            (
                item
                for item in self._writes.items()
                if start <= item[0] and (end is None or item[0] < end)
            ),
            reverse=reverse,
        )
        if not own:
            return stored
        return _overlay(stored, own, reverse)

    def write(self, key: bytes, value: bytes | None) -> None:
        if self.readonly or self._done:
            self._refuse_write()
        self._writes[key] = value

    def write_many(self, batch: Mapping[bytes, bytes | None]) -> None:
        """``write`` for each item, in one call."""
        if self.readonly or self._done:
            self._refuse_write()
        self._writes.update(batch)

    def derive_on_commit(self, derive: Derive) -> None:
        if self.readonly or self._done:
            self._refuse_write()
        self._derive = derive

    def _refuse_write(self) -> None:
        if self._done:
            raise TransactionClosed("the transaction is finished; start a new one")
        raise ReadOnlyTransaction("cannot write in a read-only transaction")

    def commit(self) -> None:
        if self._done:
            raise TransactionClosed("the transaction is already finished")
        self._done = True
        try:
            if self._writes:
                self._manager._commit(self)
        finally:
            self._manager._finish(self)

    def rollback(self) -> None:
        if self._done:
            return
        self._done = True
        self._writes = {}
        self._manager._finish(self)

    def __del__(self) -> None:
        if not self._done and self._snapshot is not None:
            self.rollback()


def _overlay(
    stored: Iterator[KeyValue], own: list[tuple[bytes, bytes | None]], reverse: bool
) -> Iterator[KeyValue]:
    """Merge a snapshot range with buffered writes: buffered ones win, ``None`` hides."""
    own_keys = {key for key, _ in own}
    unshadowed = (pair for pair in stored if pair[0] not in own_keys)
    for key, value in heapq.merge(own, unshadowed, key=itemgetter(0), reverse=reverse):
        if value is not None:
            yield key, value
