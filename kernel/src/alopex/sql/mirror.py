"""The column mirror: a columnar copy of row tables, kept in storage next to the rows.

Rows live one per key (``b"t"``), which point reads and single-row writes need; but then a
full scan decodes every row in Python. So Alopex also keeps big tables as Arrow record
batches ("segments") under ``b"c"``, and a cold full scan reads a few large values instead
of a million small ones. The copy is derived data and is checked before every use:

- every commit that writes a table's rows gives the table a new *marker* (a random token,
  written inside the commit without conflict checks, so writers never collide on it);
- the mirror's *header* records the marker token of the table state it holds.

Marker token == header token: the mirror is the table. A marker may instead say *tail*:
every commit since the header wrote only keys above the mirror's largest key, so the table
is the mirror plus a range scan of the newer keys. Otherwise the mirror is stale and a scan
decodes the rows, then stores a fresh mirror -- with a compare-and-set on the marker, so a
mirror computed from a snapshot is kept only while that snapshot is still the table.

A commit that inserts many rows past the largest key (a bulk load) appends a segment in the
same commit, so a freshly loaded table scans columnar even right after reopening.

Key layout: ``b"c" + table id (4) + b"m"`` marker, ``+ b"h"`` header, ``+ b"s" + n (4)``
segment ``n`` (an Arrow IPC stream of the table's columns plus the row keys).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import attrs
import msgpack
import pyarrow as pa

from alopex.sql.catalog import Table
from alopex.sql.encoding import decode_rows, table_prefix
from alopex.sql.types import to_arrow

if TYPE_CHECKING:
    from alopex.builtin.mvcc import MvccTransaction
    from alopex.contracts.transaction import TransactionManager

MIRROR = b"c"
EXACT, TAIL, STALE = b"=", b"+", b"!"
SEGMENT_ROWS = 1 << 17  # rows per segment: big enough for few gets, small enough to stream
MAX_SEGMENTS = 64  # beyond this a fold rewrites the mirror as few large segments

Reader = Callable[[bytes], "bytes | None"]
Writes = dict[bytes, "bytes | None"]


def prefix(table_id: int) -> bytes:
    return MIRROR + table_id.to_bytes(4, "big")


def marker_key(table_id: int) -> bytes:
    return prefix(table_id) + b"m"


def header_key(table_id: int) -> bytes:
    return prefix(table_id) + b"h"


def segment_key(table_id: int, n: int) -> bytes:
    return prefix(table_id) + b"s" + n.to_bytes(4, "big")


def fingerprint(table: Table) -> bytes:
    """What the stored columns depend on: the column types, in order."""
    return hashlib.blake2b(repr([c.type for c in table.columns]).encode(), digest_size=8).digest()


def _token() -> bytes:
    return os.urandom(16)


@attrs.frozen
class Header:
    fingerprint: bytes
    token: bytes
    max_key: bytes  # the largest row key held; b"" when empty
    segments: int
    rows: int

    def encode(self) -> bytes:
        return msgpack.packb(attrs.astuple(self))  # type: ignore[no-any-return]

    @classmethod
    def decode(cls, raw: bytes | None) -> Header | None:
        return None if raw is None else cls(*msgpack.unpackb(raw))


@attrs.frozen
class State:
    """A table's marker and mirror header as one snapshot sees them."""

    marker: bytes | None
    header: Header | None

    @classmethod
    def read(cls, read: Reader, table_id: int) -> State:
        return cls(read(marker_key(table_id)), Header.decode(read(header_key(table_id))))

    def usable(self, table: Table) -> Header | None:
        """The header, if the mirror holds this table's rows up to its largest key."""
        header, marker = self.header, self.marker
        if header is None or marker is None or header.fingerprint != fingerprint(table):
            return None
        if marker[:16] == header.token or marker[16:] == TAIL:
            return header
        return None

    @property
    def exact(self) -> bool:
        header, marker = self.header, self.marker
        return header is not None and marker is not None and marker[:16] == header.token


def created(table: Table) -> Writes:
    """The writes that give a new table an empty, exact mirror."""
    token = _token()
    header = Header(fingerprint(table), token, b"", 0, 0)
    return {marker_key(table.id): token + EXACT, header_key(table.id): header.encode()}


# -- reading ------------------------------------------------------------------------------


def load(tx: MvccTransaction, table: Table, header: Header) -> list[pa.ChunkedArray] | None:
    """The mirror's columns (the table's, then the row keys); None if a segment is gone."""
    raws = tx.read_many([segment_key(table.id, n) for n in range(header.segments)])
    if any(raw is None for raw in raws):
        return None
    tables = [pa.ipc.open_stream(raw).read_all() for raw in raws]
    if not tables:
        types = [c.type.arrow for c in table.columns] + [pa.binary()]
        return [pa.chunked_array([], t) for t in types]
    return list(pa.concat_tables(tables).columns)


def decode_columns(
    table: Table, keys: Sequence[bytes], values: Sequence[bytes], wanted: frozenset[str] | None
) -> list[pa.Array]:
    """Stored rows as Arrow columns (the table's, then the row keys); columns not in
    ``wanted`` come back as nulls without being built."""
    rows = decode_rows(values)
    columns = []
    for n, column in enumerate(table.columns):
        if wanted is None or column.name.lower() in wanted:
            columns.append(to_arrow(list(map(itemgetter(n), rows)), column.type))
        else:
            columns.append(pa.nulls(len(rows), column.type.arrow))
    return [*columns, pa.array(keys, pa.binary())]


def encode_segments(columns: Sequence[pa.Array | pa.ChunkedArray]) -> list[bytes]:
    """Columns as Arrow IPC streams of at most SEGMENT_ROWS rows each, LZ4-compressed
    (half the bytes to read; decompression runs on Arrow's threads)."""
    whole = pa.table(list(columns), names=[f"c{n}" for n in range(len(columns))])
    options = pa.ipc.IpcWriteOptions(compression="lz4")
    segments = []
    for start in range(0, max(whole.num_rows, 1), SEGMENT_ROWS):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, whole.schema, options=options) as writer:
            writer.write_table(whole.slice(start, SEGMENT_ROWS))
        segments.append(sink.getvalue().to_pybytes())
    return segments


def tail_start(table: Table, header: Header) -> bytes:
    """Where the rows newer than the mirror start."""
    return header.max_key + b"\x00" if header.max_key else table_prefix(table.id)


# -- writing ------------------------------------------------------------------------------


def store(
    txns: TransactionManager,
    table: Table,
    state: State,
    columns: Sequence[pa.ChunkedArray | pa.Array],
    tail: Sequence[pa.Array] | None,
) -> bool:
    """Keep what a scan decoded at ``state``'s snapshot: the whole table (``tail`` None)
    or the rows past the mirror (``tail``). Best effort: skipped if the table changed."""
    table_id = table.id
    header = state.header
    token = state.marker[:16] if state.marker is not None else _token()
    writes: Writes = {}
    if tail is not None and header is not None and header.segments < MAX_SEGMENTS:
        first, segments = header.segments, encode_segments(tail)
    else:  # the whole table, replacing every segment there was
        first, segments = 0, encode_segments(columns)
        for n in range(len(segments), header.segments if header is not None else 0):
            writes[segment_key(table_id, n)] = None
    for n, segment in enumerate(segments, start=first):
        writes[segment_key(table_id, n)] = segment
    keys = columns[-1]
    max_key = keys[len(keys) - 1].as_py() if len(keys) else b""
    rows = len(keys)
    new = Header(fingerprint(table), token, max_key, first + len(segments), rows)
    writes[header_key(table_id)] = new.encode()
    writes[marker_key(table_id)] = token + EXACT
    return txns.apply_if(marker_key(table_id), state.marker, writes)


@attrs.frozen
class _Written:
    """One table a commit writes: what the plan saw and what it would append."""

    table_id: int
    seen: State  # at the snapshot, with this transaction's own writes
    own: bool  # created in this transaction: its marker is not in storage yet
    lowest: bytes | None  # the smallest row key written; None if not only inserts
    append: Writes  # segments, header and marker for a bulk insert; empty if none


#: per table, the (row keys, rows) each statement of a transaction inserted
Inserts = list[tuple[list[bytes], list[list[Any]]]]


class CommitPlan:
    """What one commit does to the mirrors of the tables it writes.

    The session logs the rows its statements inserted (``appended``; None for a table
    that saw any other write), so a bulk insert becomes Arrow straight from those rows.
    The plan is built before the commit (encoding is slow and must not hold the commit
    lock); ``derive`` then checks under the lock that each table is still in the state the
    plan saw, and returns the marker, header and segment writes.
    """

    def __init__(
        self,
        tx: MvccTransaction,
        written: set[int],
        appended: Mapping[int, Inserts | None],
        tables: Callable[[int], Table | None],
        min_rows: int,
    ) -> None:
        own = tx._writes
        self.written: list[_Written] = []
        for table_id in written:
            created_here = marker_key(table_id) in own
            if created_here and own[marker_key(table_id)] is None:
                continue  # dropped in this transaction
            seen = State.read(tx.read, table_id)
            inserts = appended.get(table_id)
            if not inserts:
                self.written.append(_Written(table_id, seen, created_here, None, {}))
                continue
            keys = [key for chunk, _ in inserts for key in chunk]
            lowest = min(keys)
            append: Writes = {}
            header, table = seen.header, None
            if (
                min_rows
                and len(keys) >= min_rows
                and header is not None
                and seen.exact
                and lowest > header.max_key
                and (table := tables(table_id)) is not None
                and header.fingerprint == fingerprint(table)
            ):
                append = _appended(
                    table, header, keys, [row for _, rows in inserts for row in rows]
                )
            self.written.append(_Written(table_id, seen, created_here, lowest, append))

    def derive(self, latest: Reader) -> Writes:
        writes: Writes = {}
        for table in self.written:
            state = table.seen if table.own else State.read(latest, table.table_id)
            if table.append and state.marker == table.seen.marker:
                writes.update(table.append)
                continue
            header, marker = state.header, state.marker
            clean = (
                table.lowest is not None
                and header is not None
                and marker is not None
                and (state.exact or marker[16:] == TAIL)
                and table.lowest > header.max_key
            )
            writes[marker_key(table.table_id)] = _token() + (TAIL if clean else STALE)
        return writes


def _appended(table: Table, header: Header, keys: list[bytes], rows: list[list[Any]]) -> Writes:
    """Segments (and the grown header) holding newly inserted rows past the mirror."""
    if sorted(keys) != keys:  # not inserted in key order
        order = sorted(range(len(keys)), key=keys.__getitem__)
        keys, rows = [keys[n] for n in order], [rows[n] for n in order]
    columns = [
        to_arrow(list(map(itemgetter(n), rows)), column.type)
        for n, column in enumerate(table.columns)
    ]
    segments = encode_segments([*columns, pa.array(keys, pa.binary())])
    token, first = _token(), header.segments
    grown = Header(
        header.fingerprint, token, keys[-1], first + len(segments), header.rows + len(keys)
    )
    writes: Writes = {segment_key(table.id, first + n): s for n, s in enumerate(segments)}
    writes[header_key(table.id)] = grown.encode()
    writes[marker_key(table.id)] = token + EXACT
    return writes
