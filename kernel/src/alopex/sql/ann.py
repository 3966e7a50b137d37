"""ANN indexes on VECTOR columns: provider indexes in memory, kept in step with the rows.

Rows stay the truth; an HNSW (or IVF, flat...) index is derived from them. Every vector
index has a change log in storage at ``b"v" + index id``: each commit that writes the
table appends the row keys it changed (inside the commit, via
``Transaction.derive_on_commit``), and a counter says how many entries exist. The
in-memory index knows how many entries it has applied (its *position*).

A query whose snapshot sees ``n`` entries catches the index up to ``n`` (re-reading the
changed rows at its snapshot) and searches it. A query whose snapshot is older than the
index, or whose transaction has written the table itself, ranks exactly instead. Either
way no committed or own row is ever missed. The index is built from the rows on first use
after opening (from the column mirror when there is one).

Row ids are the tables' integer keys: an INTEGER PRIMARY KEY, or the hidden rowid.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import msgpack
import numpy as np
import pyarrow as pa

from alopex.contracts.index import IndexOptions, VectorIndex
from alopex.errors import NotSupportedError, ProgrammingError
from alopex.sql.catalog import Index, Table
from alopex.sql.encoding import decode_int, decode_row, encode_int, table_prefix

if TYPE_CHECKING:
    from alopex.builtin.mvcc import MvccTransaction
    from alopex.contracts.transaction import TransactionManager
    from alopex.plugins import PluginSet

LOG = b"v"
METHODS = {"hnsw": "hnswlib", "ivf": "faiss"}  # USING ... -> default provider
_VALUE_TAG = b"\x02"  # encoding's tag of a non-NULL key part


def log_prefix(index_id: int) -> bytes:
    return LOG + index_id.to_bytes(4, "big")


def counter_key(index_id: int) -> bytes:
    return log_prefix(index_id) + b"n"


def entry_key(index_id: int, n: int) -> bytes:
    return log_prefix(index_id) + b"l" + n.to_bytes(8, "big")


def log_count(raw: bytes | None) -> int:
    """How many change-log entries a counter value says there are."""
    return 0 if raw is None else int.from_bytes(raw, "big")


def check_table(table: Table, column: int) -> None:
    """Refuse what an ANN index cannot key: tables without an integer row id."""
    if table.columns[column].type.dim is None:
        raise ProgrammingError(
            f"{table.name}.{table.columns[column].name} is not a VECTOR column; "
            "HNSW and IVF indexes are for vectors"
        )
    if table.primary_key and not _rowid_alias(table):
        raise NotSupportedError(
            f"a vector index needs an INTEGER PRIMARY KEY (or no primary key) on {table.name}"
        )


def _rowid_alias(table: Table) -> bool:
    return (
        len(table.primary_key) == 1 and table.columns[table.primary_key[0]].type.arrow == pa.int64()
    )


def row_ids(table: Table, keys: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """int64 ids of row keys, decoded as one NumPy view of their fixed-width bytes."""
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    skip = 5 + (1 if table.primary_key else 0)  # table prefix, then the value tag
    width = skip + 8
    count = len(keys)
    offsets = np.frombuffer(keys.buffers()[1], np.int32)[keys.offset : keys.offset + count + 1]
    if count and (offsets[-1] - offsets[0] != count * width or keys.null_count):
        raise NotSupportedError("vector index keys must be integer row ids")
    data = np.frombuffer(
        keys.buffers()[2], np.uint8, count * width, int(offsets[0]) if count else 0
    )
    raw = data.reshape(count, width)[:, skip:].copy().view(">u8").reshape(-1)
    return np.asarray((raw.astype(np.uint64) - np.uint64(1 << 63)).astype(np.int64))


def row_key(table: Table, row_id: int) -> bytes:
    tag = _VALUE_TAG if table.primary_key else b""
    return table_prefix(table.id) + tag + encode_int(row_id)


def _key_id(table: Table, key: bytes) -> int:
    body = key[5:]
    return decode_int(body[1:] if table.primary_key else body)


@attrs.define
class Live:
    """One index in memory and how far into its change log it has got."""

    index: VectorIndex
    position: int
    #: held to change ``position`` and the index; searches do not take it
    mutex: threading.Lock = attrs.field(factory=threading.Lock)
    #: odd while a catch-up changes the index. A search reads it before and after, and
    #: one that saw it change answers None (a seqlock: no lock per search, and a
    #: catch-up never waits for searches; the provider keeps its own writes and
    #: searches apart, as the index contract asks)
    changes: int = 0
    #: a catch-up failed part way: the index is at no snapshot. ``changes`` stays odd,
    #: so every search takes the mutex, and the first rebuilds the index from the rows
    damaged: bool = False


class AnnIndexes:
    """The vector indexes of one database, shared by its sessions.

    A persistent database saves each index at close into ``indexes/<id>-<position>/``
    (the provider's files, written to a temporary folder then renamed), so reopening
    loads it and replays only the change-log entries after ``position``; the entries
    before it are then deleted, so the log holds only what the newest snapshot lacks. A
    missing or unreadable snapshot means a rebuild from the rows, never a wrong answer.
    """

    def __init__(
        self,
        plugins: PluginSet,
        directory: Path | None = None,
        txns: TransactionManager | None = None,
    ) -> None:
        self.plugins = plugins
        self.directory = directory
        self.txns = txns
        self.live: dict[int, Live] = {}
        self.lock = threading.Lock()

    def save(self) -> None:
        """Persist every index in memory (called before the database closes)."""
        if self.directory is None or sys.is_finalizing():  # at exit: the next open rebuilds
            return
        with self.lock:
            for index_id, live in self.live.items():
                with live.mutex:
                    if not live.damaged:  # else the next open rebuilds it
                        self._save(index_id, live)
                        self._trim(index_id, live.position)

    def _save(self, index_id: int, live: Live) -> None:
        assert self.directory is not None
        final = self.directory / f"{index_id}-{live.position}"
        if final.exists():
            return
        temporary = self.directory / f".{index_id}-{live.position}.tmp"
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir(parents=True)
        live.index.save(temporary / "index")
        os.replace(temporary, final)
        for old in self._snapshots(index_id):
            if old != final:
                shutil.rmtree(old, ignore_errors=True)

    def _trim(self, index_id: int, position: int) -> None:
        """Delete the log entries a saved snapshot at ``position`` already holds."""
        if self.txns is None:
            return
        tx = self.txns.begin(readonly=True)
        try:
            start = log_prefix(index_id) + b"l"
            stale = [key for key, _ in tx.read_range(start, entry_key(index_id, position))]
        finally:
            tx.rollback()
        if stale:
            self.txns.apply(dict.fromkeys(stale))

    def _snapshots(self, index_id: int) -> list[Path]:
        if self.directory is None or not self.directory.is_dir():
            return []
        found = [p for p in self.directory.glob(f"{index_id}-*") if p.is_dir()]
        return sorted(found, key=lambda p: int(p.name.partition("-")[2]), reverse=True)

    def _load(self, table: Table, index: Index, wanted: int) -> Live | None:
        """The newest saved snapshot this snapshot can catch up from, or None."""
        for folder in self._snapshots(index.id):
            position = int(folder.name.partition("-")[2])
            if position > wanted:
                continue
            loaded = self.create(table, index)
            try:
                loaded.load(folder / "index")
            except Exception:  # damaged or foreign: rebuild from the rows instead
                continue
            return Live(loaded, position)
        return None

    def options(self, table: Table, index: Index) -> IndexOptions:
        column = table.columns[index.columns[0]]
        params = dict(index.params)
        metric = str(params.pop("metric", column.type.metric or "cosine")).lower()
        if params.pop("provider", None) == "faiss":
            params["kind"] = index.method  # faiss serves both USING HNSW and USING IVF
        return IndexOptions(column.type.dim or 0, metric, params)

    def create(self, table: Table, index: Index) -> VectorIndex:
        provider = str(index.params.get("provider") or METHODS[index.method])
        backend = self.plugins.select("index_providers", provider)
        created: VectorIndex = backend.factory(self.options(table, index))
        return created

    def build(
        self,
        tx: MvccTransaction,
        table: Table,
        index: Index,
        columns: list[Any],
        progress: Callable[[int, int], None] | None = None,
    ) -> Live:
        """An index over ``columns`` (the table's, then row keys) as ``tx`` sees them."""
        built = self.create(table, index)
        vectors, keys = columns[index.columns[0]], columns[-1]
        if isinstance(vectors, pa.ChunkedArray):
            vectors = vectors.combine_chunks()
        present = vectors.is_valid()
        ids = row_ids(table, keys.filter(present) if vectors.null_count else keys)
        kept = vectors.filter(present) if vectors.null_count else vectors
        matrix = _matrix(kept, table.columns[index.columns[0]].type.dim or 0)
        step = 10_000
        for start in range(0, len(ids), step):
            built.add(ids[start : start + step], matrix[start : start + step])
            if progress is not None:
                progress(min(start + step, len(ids)), len(ids))
        return Live(built, log_count(tx.read(counter_key(index.id))))

    def searchable(
        self,
        tx: MvccTransaction,
        table: Table,
        index: Index,
        columns: Callable[[], list[Any]],
        progress: Callable[[int, int], None] | None = None,
    ) -> bool:
        """Bring the index to ``tx``'s snapshot (loading or building it first, with
        ``progress`` following a build); False when it is already past that snapshot."""
        wanted = log_count(tx.read(counter_key(index.id)))
        live = self._live(tx, table, index, columns, wanted, progress)
        with live.mutex:
            return self._at_locked(tx, table, index, columns, live, wanted)

    def search(
        self,
        tx: MvccTransaction,
        table: Table,
        index: Index,
        columns: Callable[[], list[Any]],
        query: np.ndarray,
        k: int,
        *,
        allow: np.ndarray | None = None,
        params: Mapping[str, Any] | None = None,
        wanted: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The index's ``search`` as of ``tx``'s snapshot (whose log counter is ``wanted``,
        read here if not given), or None when the index is past that snapshot."""
        if wanted is None:
            wanted = log_count(tx.read(counter_key(index.id)))
        live = self.live.get(index.id) or self._live(tx, table, index, columns, wanted, None)
        changes = live.changes  # before position: see Live.changes
        if changes & 1 or live.position != wanted:
            with live.mutex:
                if not self._at_locked(tx, table, index, columns, live, wanted):
                    return None
                changes = live.changes
        found = live.index.search(query, k, allow=allow, params=params)
        # a catch-up began meanwhile: the answer may hold rows newer than this snapshot
        return found if live.changes == changes else None

    def _live(
        self,
        tx: MvccTransaction,
        table: Table,
        index: Index,
        columns: Callable[[], list[Any]],
        wanted: int,
        progress: Callable[[int, int], None] | None,
    ) -> Live:
        """The index in memory, loaded or built first if it is not."""
        live = self.live.get(index.id)  # entries change only under the lock
        if live is None:
            with self.lock:
                live = self.live.get(index.id)
                if live is None:
                    live = self._load(table, index, wanted) or self.build(
                        tx, table, index, columns(), progress
                    )
                    self.live[index.id] = live
        return live

    def _at_locked(
        self,
        tx: MvccTransaction,
        table: Table,
        index: Index,
        columns: Callable[[], list[Any]],
        live: Live,
        wanted: int,
    ) -> bool:
        """Catch ``live`` up to ``wanted`` (under its lock); False if it is past it."""
        if live.damaged:
            rebuilt = self.build(tx, table, index, columns())
            live.index, live.position, live.damaged = rebuilt.index, rebuilt.position, False
            live.changes += 1
        if live.position > wanted:
            return False  # built or caught up past this (older) snapshot
        if live.position < wanted:
            self._catch_up(tx, table, index, live, wanted)
        return True

    def _catch_up(
        self, tx: MvccTransaction, table: Table, index: Index, live: Live, wanted: int
    ) -> None:
        entries = tx.read_many([entry_key(index.id, n) for n in range(live.position, wanted)])
        keys = sorted({key for raw in entries if raw for key in msgpack.unpackb(raw)})
        rows = tx.read_many(keys) if keys else []
        position, dim = index.columns[0], table.columns[index.columns[0]].type.dim or 0
        gone, ids, vectors = [], [], []
        for key, raw in zip(keys, rows, strict=True):
            value = decode_row(raw)[position] if raw is not None else None
            if value is None:
                gone.append(_key_id(table, key))
            else:
                ids.append(_key_id(table, key))
                vectors.append(np.frombuffer(value, np.float32))
        live.changes += 1
        try:
            if gone:
                live.index.remove(np.asarray(gone, np.int64))
            if ids:
                live.index.add(np.asarray(ids, np.int64), np.stack(vectors).reshape(-1, dim))
        except BaseException:
            live.damaged = True  # and changes stays odd: see Live.damaged
            raise
        live.position = wanted
        live.changes += 1

    def forget(self, index_ids: Iterable[int]) -> None:
        """Drop indexes and their saved snapshots (DROP INDEX / TABLE); if the drop rolls
        back, the next query rebuilds the index from the rows."""
        with self.lock:
            for index_id in index_ids:
                self.live.pop(index_id, None)
                for folder in self._snapshots(index_id):
                    shutil.rmtree(folder, ignore_errors=True)


def logged(tx: MvccTransaction, tables: Iterable[tuple[Table, list[Index]]]) -> list[Any]:
    """What a commit appends to the change logs: (index ids, changed row keys) per table."""
    plan = []
    writes = tx._writes
    for table, indexes in tables:
        prefix = table_prefix(table.id)
        keys = [key for key in writes if key[:5] == prefix]
        if keys:
            plan.append(([i.id for i in indexes], keys))
    return plan


def derive_log(plan: list[Any], latest: Callable[[bytes], bytes | None]) -> dict[bytes, bytes]:
    """Under the commit lock: one log entry per index, numbered after the latest one."""
    writes: dict[bytes, bytes] = {}
    for index_ids, keys in plan:
        entry = msgpack.packb(keys)
        for index_id in index_ids:
            n = log_count(latest(counter_key(index_id)))
            writes[entry_key(index_id, n)] = entry
            writes[counter_key(index_id)] = (n + 1).to_bytes(8, "big")
    return writes


def _matrix(vectors: pa.Array, dim: int) -> np.ndarray:
    flat = vectors.values.slice(vectors.offset * dim, len(vectors) * dim)
    return np.asarray(flat.to_numpy(zero_copy_only=False), np.float32).reshape(-1, dim)
