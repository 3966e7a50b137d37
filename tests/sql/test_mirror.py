"""The column mirror (alopex.sql.mirror): cold full scans read Arrow segments, and the
mirror never shows rows a snapshot should not see, whatever happened to the table."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import alopex
from alopex.sql import mirror

MIN_ROWS = 4


def config(min_rows: int = MIN_ROWS) -> dict[str, dict[str, object]]:
    return {"storage": {"engine": "rocks", "sync": "off"}, "sql": {"column_mirror_rows": min_rows}}


@pytest.fixture
def opener(tmp_path: Path) -> Iterator[Callable[[], alopex.Connection]]:
    opened: list[alopex.Connection] = []

    def open_() -> alopex.Connection:
        connection = alopex.connect(tmp_path / "db", config=config())
        opened.append(connection)
        return connection

    yield open_
    for connection in reversed(opened):
        if not connection.closed:
            connection.close()


def how(con: alopex.Connection, table: str = "t") -> str:
    """How the full scan of ``table`` got its columns, from EXPLAIN."""
    plan = "\n".join(str(row) for row in con.execute(f"EXPLAIN SELECT sum(v) FROM {table}"))
    start = plan.index("full scan (") + len("full scan (")
    return plan[start : plan.index(")", start)]


def load(con: alopex.Connection, ids: range, table: str = "t") -> None:
    con.executemany(f"INSERT INTO {table} VALUES (?, ?)", [(i, i * 10) for i in ids])
    con.commit()


def total(con: alopex.Connection) -> tuple[int, int]:
    count, summed = con.execute("SELECT count(*), sum(v) FROM t").fetchone()
    return count, summed or 0


@pytest.fixture
def loaded(opener: Callable[[], alopex.Connection]) -> alopex.Connection:
    """A table of ten rows loaded in one commit, then a reopen."""
    con = opener()
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER)")
    load(con, range(1, 11))
    con.close()
    return opener()


def test_a_bulk_load_is_scanned_columnar_right_after_reopening(loaded: alopex.Connection) -> None:
    assert how(loaded) == "column mirror"
    assert total(loaded) == (10, 550)


def test_small_inserts_past_the_mirror_are_read_as_newer_rows(
    loaded: alopex.Connection, opener: Callable[[], alopex.Connection]
) -> None:
    load(loaded, range(11, 13))  # fewer rows than MIN_ROWS: no segment of their own
    loaded.close()
    con = opener()
    assert how(con) == "column mirror + 2 newer rows"
    assert total(con) == (12, 780)


def test_a_large_tail_is_folded_into_the_mirror(
    loaded: alopex.Connection, opener: Callable[[], alopex.Connection]
) -> None:
    for i in range(11, 11 + MIN_ROWS):  # one commit each: a tail of MIN_ROWS rows
        load(loaded, range(i, i + 1))
    assert how(loaded) == f"column mirror + {MIN_ROWS} newer rows"
    loaded.close()
    con = opener()
    assert how(con) == "column mirror"
    assert total(con) == (14, sum(range(1, 15)) * 10)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("UPDATE t SET v = 0 WHERE id = 3", (10, 520)),
        ("DELETE FROM t WHERE id > 8", (8, 360)),
        ("INSERT INTO t VALUES (0, 5)", (11, 555)),  # below the largest key
    ],
)
def test_other_changes_make_it_stale_and_the_next_scan_rebuilds_it(
    loaded: alopex.Connection,
    opener: Callable[[], alopex.Connection],
    change: str,
    expected: tuple[int, int],
) -> None:
    loaded.execute(change)
    loaded.commit()
    assert how(loaded) == "rows decoded"
    assert total(loaded) == expected
    loaded.close()
    con = opener()
    assert how(con) == "column mirror"
    assert total(con) == expected


def test_a_rolled_back_load_leaves_the_mirror_exact(loaded: alopex.Connection) -> None:
    loaded.executemany("INSERT INTO t VALUES (?, ?)", [(i, 1) for i in range(11, 30)])
    loaded.execute("SAVEPOINT s")
    loaded.execute("DELETE FROM t")
    loaded.execute("ROLLBACK TO s")
    assert total(loaded) == (29, 550 + 19)  # its own writes: rows decoded
    loaded.rollback()
    assert how(loaded) == "column mirror"
    assert total(loaded) == (10, 550)


def test_an_older_snapshot_never_sees_a_newer_mirror(
    loaded: alopex.Connection, opener: Callable[[], alopex.Connection]
) -> None:
    other = opener()
    loaded.execute("BEGIN")
    assert total(loaded) == (10, 550)  # takes the snapshot
    load(other, range(11, 21))  # appends a segment
    other.execute("UPDATE t SET v = 0 WHERE id = 1")
    other.commit()
    assert total(other) == (20, 2090)  # decodes rows, stores a fresh mirror
    assert total(loaded) == (10, 550)
    loaded.execute("UPDATE t SET v = 1 WHERE id = 2")  # its own write: rows decoded
    assert total(loaded) == (10, 531)
    loaded.commit()
    assert total(loaded) == (20, 2071)
    assert total(other) == (20, 2090)  # still in the transaction of its last query
    other.rollback()
    assert total(other) == (20, 2071)


def test_a_scan_of_an_old_snapshot_does_not_store_its_mirror(
    loaded: alopex.Connection, opener: Callable[[], alopex.Connection]
) -> None:
    loaded.execute("UPDATE t SET v = 0 WHERE id = 1")
    loaded.commit()  # stale
    reader, writer = opener(), opener()
    reader.execute("BEGIN")
    reader.execute("SELECT 1 FROM t WHERE id = 1").fetchall()  # snapshot before the write
    writer.execute("UPDATE t SET v = 0 WHERE id = 2")
    writer.commit()
    assert total(reader) == (10, 540)  # rows decoded; its mirror is already out of date
    reader.commit()
    fresh = opener()
    assert how(fresh) == "rows decoded"
    assert total(fresh) == (10, 520)


def test_a_schema_change_is_never_served_from_the_old_mirror(loaded: alopex.Connection) -> None:
    loaded.execute("ALTER TABLE t ADD COLUMN w INTEGER DEFAULT 7")
    loaded.commit()
    assert loaded.execute("SELECT sum(w), sum(v) FROM t").fetchone() == (70, 550)
    loaded.execute("ALTER TABLE t DROP COLUMN w")
    loaded.commit()
    assert loaded.execute("SELECT * FROM t WHERE id = 2").fetchall() == [(2, 20)]


def test_dropping_a_table_removes_its_mirror(loaded: alopex.Connection) -> None:
    table_id = _table_id(loaded, "t")
    loaded.execute("DROP TABLE t")
    loaded.commit()
    start = mirror.prefix(table_id)
    assert list(loaded.database.engine.scan(start, start + b"\xff")) == []
    loaded.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER)")
    loaded.commit()
    assert total(loaded) == (0, 0)


def test_a_missing_segment_falls_back_to_the_rows(
    loaded: alopex.Connection, opener: Callable[[], alopex.Connection]
) -> None:
    table_id = _table_id(loaded, "t")
    loaded.database.txns.apply({mirror.segment_key(table_id, 0): None})
    loaded.close()
    con = opener()
    assert how(con) == "rows decoded"
    assert total(con) == (10, 550)


def test_memory_databases_keep_no_mirror() -> None:
    con = alopex.connect(":memory:", config={"sql": {"column_mirror_rows": 1}})
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER)")
    load(con, range(1, 11))
    assert how(con) == "rows decoded"
    assert how(con) == "cached columns"
    kept = [key for key, _ in con.database.engine.scan(mirror.MIRROR, b"d")]
    assert kept == [mirror.marker_key(_table_id(con, "t"))]  # the marker only
    con.close()


def _table_id(con: alopex.Connection, name: str) -> int:
    con.execute("SELECT 1")  # opens the session's transaction
    session = con._session
    assert session is not None and session.tx is not None
    return session._load_catalog(session.tx).table(name).id


class MirrorMachine(RuleBasedStateMachine):
    """Random loads, point changes, rollbacks and reopens against a dict: every full scan
    (mirror, mirror + tail, rows) must give the model's rows."""

    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self.dir = Path(tempfile.mkdtemp(prefix="alopex-mirror-"))
        self.con = self._open()
        self.con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER)")
        self.con.commit()
        self.model: dict[int, int] = {}
        self.pending: dict[int, int] | None = None

    def _open(self) -> alopex.Connection:
        return alopex.connect(self.dir / "db", config=config(3))

    @property
    def expected(self) -> dict[int, int]:
        return self.pending if self.pending is not None else self.model

    @rule(count=st.integers(0, 8), value=st.integers(-5, 5))
    def append(self, count: int, value: int) -> None:
        start = max(self.expected, default=0) + 1
        rows = [(i, value) for i in range(start, start + count)]
        self.con.executemany("INSERT INTO t VALUES (?, ?)", rows)
        self._changed(dict(rows))

    @rule(key=st.integers(-20, 60), value=st.integers(-5, 5))
    def upsert(self, key: int, value: int) -> None:
        self.con.execute(
            "INSERT INTO t VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET v = excluded.v",
            (key, value),
        )
        self._changed({key: value})

    @rule(low=st.integers(-20, 60))
    def delete(self, low: int) -> None:
        self.con.execute("DELETE FROM t WHERE id >= ? AND id < ? + 3", (low, low))
        current = dict(self.expected)
        for key in range(low, low + 3):
            current.pop(key, None)
        self.pending = current

    def _changed(self, rows: dict[int, int]) -> None:
        self.pending = {**self.expected, **rows}

    @rule()
    def commit(self) -> None:
        self.con.commit()
        self.model = self.expected
        self.pending = None

    @rule()
    def rollback(self) -> None:
        self.con.rollback()
        self.pending = None

    @precondition(lambda self: self.pending is None)
    @rule()
    def reopen(self) -> None:
        self.con.close()
        self.con = self._open()

    @invariant()
    def full_scans_match(self) -> None:
        rows = self.con.execute("SELECT id, v FROM t").fetchall()
        assert sorted(rows) == sorted(self.expected.items())
        count, summed = self.con.execute("SELECT count(*), sum(v) FROM t").fetchone()
        assert (count, summed or 0) == (len(self.expected), sum(self.expected.values()))

    def teardown(self) -> None:
        self.con.close()
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)


TestMirrorMachine = MirrorMachine.TestCase
TestMirrorMachine.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_inserts_past_the_mirror_still_find_duplicates(
    loaded: alopex.Connection, opener: Callable[[], alopex.Connection]
) -> None:
    """Keys above an exact mirror skip the storage read, never the duplicate check."""
    with pytest.raises(alopex.IntegrityError, match="PRIMARY KEY"):
        loaded.executemany("INSERT INTO t VALUES (?, ?)", [(20, 1), (20, 2)])  # one statement
    loaded.execute("INSERT INTO t VALUES (30, 1)")
    with pytest.raises(alopex.IntegrityError, match="PRIMARY KEY"):
        loaded.execute("INSERT INTO t VALUES (30, 2)")  # a row of an earlier statement
    with pytest.raises(alopex.IntegrityError, match="PRIMARY KEY"):
        loaded.execute("INSERT INTO t VALUES (5, 2)")  # below the largest key: in storage
    loaded.execute("DELETE FROM t WHERE id = 30")
    loaded.execute("INSERT INTO t VALUES (30, 3)")
    loaded.commit()
    assert loaded.execute("SELECT v FROM t WHERE id = 30").fetchall() == [(3,)]
    other = opener()
    loaded.execute("INSERT INTO t VALUES (40, 1)")
    other.execute("INSERT INTO t VALUES (40, 2)")
    other.commit()
    with pytest.raises(alopex.TransactionConflict):
        loaded.commit()
    assert total(other) == (12, 550 + 3 + 2)
