"""CREATE / DROP / ALTER: tables, constraints, indexes and views; DDL in transactions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

import alopex


def rows(con: alopex.Connection, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
    return con.execute(sql, params).fetchall()


# -- CREATE / DROP TABLE ---------------------------------------------------------------------


def test_create_table_then_insert_and_select(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (a INTEGER, b TEXT)")
    con.execute("INSERT INTO t VALUES (1, 'x')")
    assert rows(con, "SELECT a, b FROM t") == [(1, "x")]


def test_create_existing_table_raises(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (a INTEGER)")
    with pytest.raises(alopex.ProgrammingError, match="t"):
        con.execute("CREATE TABLE t (b TEXT)")


def test_create_table_if_not_exists_keeps_the_table(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (a INTEGER)")
    con.execute("INSERT INTO t VALUES (1)")
    con.execute("CREATE TABLE IF NOT EXISTS t (b TEXT)")
    assert rows(con, "SELECT * FROM t") == [(1,)]


def test_table_names_are_case_insensitive(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE Things (A INTEGER)")
    con.execute("INSERT INTO THINGS (a) VALUES (1)")
    assert rows(con, "SELECT a FROM things") == [(1,)]


def test_drop_table(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (a INTEGER)")
    con.execute("DROP TABLE t")
    with pytest.raises(alopex.ProgrammingError):
        con.execute("SELECT * FROM t")


def test_drop_table_removes_its_rows(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (a INTEGER)")
    con.execute("INSERT INTO t VALUES (1), (2)")
    con.execute("DROP TABLE t")
    con.execute("CREATE TABLE t (a INTEGER)")
    assert rows(con, "SELECT * FROM t") == []


def test_drop_missing_table_raises(con: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError, match="nope"):
        con.execute("DROP TABLE nope")


def test_drop_table_if_exists_on_a_missing_table(con: alopex.Connection) -> None:
    con.execute("DROP TABLE IF EXISTS nope")


def test_create_table_as_select(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE src (a INTEGER, b TEXT)")
    con.execute("INSERT INTO src VALUES (1, 'x'), (2, 'y')")
    con.execute("CREATE TABLE dst AS SELECT a * 10 AS a10, b FROM src")
    assert rows(con, "SELECT a10, b FROM dst ORDER BY a10") == [(10, "x"), (20, "y")]


# -- PRIMARY KEY -----------------------------------------------------------------------------


def test_primary_key_rejects_duplicates(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    con.execute("INSERT INTO t VALUES (1, 'a')")
    with pytest.raises(alopex.IntegrityError):
        con.execute("INSERT INTO t VALUES (1, 'b')")
    assert rows(con, "SELECT * FROM t") == [(1, "a")]


def test_text_primary_key(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (code TEXT PRIMARY KEY, v INTEGER)")
    con.execute("INSERT INTO t VALUES ('b', 2), ('a', 1)")
    with pytest.raises(alopex.IntegrityError):
        con.execute("INSERT INTO t VALUES ('a', 3)")
    assert rows(con, "SELECT * FROM t ORDER BY code") == [("a", 1), ("b", 2)]


def test_integer_primary_key_assigns_ids_like_sqlite(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    con.execute("INSERT INTO t (v) VALUES ('a')")
    con.execute("INSERT INTO t VALUES (10, 'b')")
    con.execute("INSERT INTO t (id, v) VALUES (NULL, 'c')")
    assert rows(con, "SELECT id, v FROM t ORDER BY id") == [(1, "a"), (10, "b"), (11, "c")]


def test_non_integer_primary_key_is_not_null(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (code TEXT PRIMARY KEY)")
    with pytest.raises(alopex.IntegrityError):
        con.execute("INSERT INTO t VALUES (NULL)")


def test_composite_primary_key(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (a INTEGER, b INTEGER, v TEXT, PRIMARY KEY (a, b))")
    con.execute("INSERT INTO t VALUES (1, 1, 'x'), (1, 2, 'y'), (2, 1, 'z')")
    with pytest.raises(alopex.IntegrityError):
        con.execute("INSERT INTO t VALUES (1, 2, 'dup')")
    assert rows(con, "SELECT a, b, v FROM t ORDER BY a, b") == [
        (1, 1, "x"),
        (1, 2, "y"),
        (2, 1, "z"),
    ]


def test_two_primary_keys_are_refused(con: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError):
        con.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b INTEGER PRIMARY KEY)")


# -- NOT NULL, UNIQUE, DEFAULT, CHECK --------------------------------------------------------


def test_not_null_rejects_null(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (a INTEGER NOT NULL)")
    with pytest.raises(alopex.IntegrityError, match=r"t\.a"):
        con.execute("INSERT INTO t VALUES (NULL)")


def test_not_null_rejects_an_omitted_column(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (a INTEGER NOT NULL, b INTEGER)")
    with pytest.raises(alopex.IntegrityError, match=r"t\.a"):
        con.execute("INSERT INTO t (b) VALUES (1)")


def test_not_null_rejects_update_to_null(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (a INTEGER NOT NULL)")
    con.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(alopex.IntegrityError):
        con.execute("UPDATE t SET a = NULL")
    assert rows(con, "SELECT a FROM t") == [(1,)]


def test_unique_column(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, email TEXT UNIQUE)")
    con.execute("INSERT INTO t VALUES (1, 'a@x')")
    with pytest.raises(alopex.IntegrityError, match="email"):
        con.execute("INSERT INTO t VALUES (2, 'a@x')")


def test_unique_allows_several_nulls(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, email TEXT UNIQUE)")
    con.execute("INSERT INTO t VALUES (1, NULL), (2, NULL)")
    assert rows(con, "SELECT count(*) FROM t") == [(2,)]


def test_table_level_unique_over_two_columns(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (a INTEGER, b INTEGER, UNIQUE (a, b))")
    con.execute("INSERT INTO t VALUES (1, 1), (1, 2), (2, 1)")
    with pytest.raises(alopex.IntegrityError):
        con.execute("INSERT INTO t VALUES (2, 1)")


def test_unique_checked_on_update(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, u INTEGER UNIQUE)")
    con.execute("INSERT INTO t VALUES (1, 10), (2, 20)")
    with pytest.raises(alopex.IntegrityError):
        con.execute("UPDATE t SET u = 10 WHERE id = 2")
    assert rows(con, "SELECT id, u FROM t ORDER BY id") == [(1, 10), (2, 20)]


def test_unique_value_is_free_again_after_delete(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (u INTEGER UNIQUE)")
    con.execute("INSERT INTO t VALUES (1)")
    con.execute("DELETE FROM t")
    con.execute("INSERT INTO t VALUES (1)")
    assert rows(con, "SELECT u FROM t") == [(1,)]


def test_default_literals(con: alopex.Connection) -> None:
    con.execute(
        "CREATE TABLE t (id INTEGER, n INTEGER DEFAULT 7, s TEXT DEFAULT 'none', "
        "r REAL DEFAULT -1.5, b BOOLEAN DEFAULT FALSE)"
    )
    con.execute("INSERT INTO t (id) VALUES (1)")
    assert rows(con, "SELECT * FROM t") == [(1, 7, "none", -1.5, False)]


def test_default_expression(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (id INTEGER, n INTEGER DEFAULT (6 * 7))")
    con.execute("INSERT INTO t (id) VALUES (1)")
    assert rows(con, "SELECT n FROM t") == [(42,)]


def test_default_current_timestamp(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (id INTEGER, created TIMESTAMP DEFAULT CURRENT_TIMESTAMP)")
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    con.execute("INSERT INTO t (id) VALUES (1)")
    after = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    ((created,),) = rows(con, "SELECT created FROM t")
    assert isinstance(created, dt.datetime)
    assert before - dt.timedelta(seconds=1) <= created <= after + dt.timedelta(seconds=1)


def test_explicit_null_overrides_the_default(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (id INTEGER, n INTEGER DEFAULT 7)")
    con.execute("INSERT INTO t VALUES (1, NULL)")
    assert rows(con, "SELECT n FROM t") == [(None,)]


def test_check_constraint_on_a_column(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (qty INTEGER CHECK (qty > 0))")
    con.execute("INSERT INTO t VALUES (5)")
    with pytest.raises(alopex.IntegrityError, match="t"):
        con.execute("INSERT INTO t VALUES (0)")
    assert rows(con, "SELECT qty FROM t") == [(5,)]


def test_check_constraint_on_the_table(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (lo INTEGER, hi INTEGER, CHECK (lo <= hi))")
    con.execute("INSERT INTO t VALUES (1, 2)")
    with pytest.raises(alopex.IntegrityError):
        con.execute("INSERT INTO t VALUES (3, 2)")


def test_check_constraint_passes_null(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (qty INTEGER CHECK (qty > 0))")
    con.execute("INSERT INTO t VALUES (NULL)")
    assert rows(con, "SELECT qty FROM t") == [(None,)]


def test_check_constraint_on_update(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (qty INTEGER CHECK (qty > 0))")
    con.execute("INSERT INTO t VALUES (5)")
    with pytest.raises(alopex.IntegrityError):
        con.execute("UPDATE t SET qty = qty - 10")
    assert rows(con, "SELECT qty FROM t") == [(5,)]


# -- indexes ---------------------------------------------------------------------------------


@pytest.fixture
def indexed(con: alopex.Connection) -> alopex.Connection:
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT, v INTEGER)")
    con.execute("INSERT INTO t VALUES (1, 'a', 10), (2, 'b', 20), (3, 'a', 30)")
    return con


def test_create_index_keeps_query_results(indexed: alopex.Connection) -> None:
    indexed.execute("CREATE INDEX t_k ON t (k)")
    assert rows(indexed, "SELECT id FROM t WHERE k = 'a' ORDER BY id") == [(1,), (3,)]


def test_index_follows_inserts_updates_and_deletes(indexed: alopex.Connection) -> None:
    indexed.execute("CREATE INDEX t_k ON t (k)")
    indexed.execute("INSERT INTO t VALUES (4, 'a', 40)")
    indexed.execute("UPDATE t SET k = 'b' WHERE id = 1")
    indexed.execute("DELETE FROM t WHERE id = 3")
    assert rows(indexed, "SELECT id FROM t WHERE k = 'a' ORDER BY id") == [(4,)]
    assert rows(indexed, "SELECT id FROM t WHERE k = 'b' ORDER BY id") == [(1,), (2,)]


def test_create_index_on_two_columns(indexed: alopex.Connection) -> None:
    indexed.execute("CREATE INDEX t_kv ON t (k, v DESC)")
    assert rows(indexed, "SELECT id FROM t WHERE k = 'a' AND v = 30") == [(3,)]


def test_create_existing_index_raises(indexed: alopex.Connection) -> None:
    indexed.execute("CREATE INDEX t_k ON t (k)")
    with pytest.raises(alopex.ProgrammingError):
        indexed.execute("CREATE INDEX t_k ON t (v)")


def test_create_index_if_not_exists(indexed: alopex.Connection) -> None:
    indexed.execute("CREATE INDEX t_k ON t (k)")
    indexed.execute("CREATE INDEX IF NOT EXISTS t_k ON t (v)")


def test_create_index_on_a_missing_column_raises(indexed: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError, match="nope"):
        indexed.execute("CREATE INDEX t_x ON t (nope)")


def test_create_index_on_a_missing_table_raises(con: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError, match="nope"):
        con.execute("CREATE INDEX i ON nope (a)")


def test_unique_index_rejects_duplicates(indexed: alopex.Connection) -> None:
    indexed.execute("CREATE UNIQUE INDEX t_v ON t (v)")
    with pytest.raises(alopex.IntegrityError):
        indexed.execute("INSERT INTO t VALUES (4, 'c', 10)")


def test_unique_index_over_duplicate_data_is_refused(indexed: alopex.Connection) -> None:
    with pytest.raises(alopex.IntegrityError):
        indexed.execute("CREATE UNIQUE INDEX t_k ON t (k)")
    indexed.execute("INSERT INTO t VALUES (4, 'a', 40)")  # no index was left behind


def test_drop_index(indexed: alopex.Connection) -> None:
    indexed.execute("CREATE UNIQUE INDEX t_v ON t (v)")
    indexed.execute("DROP INDEX t_v")
    indexed.execute("INSERT INTO t VALUES (4, 'c', 10)")
    assert rows(indexed, "SELECT id FROM t WHERE v = 10 ORDER BY id") == [(1,), (4,)]


def test_drop_missing_index_raises(con: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError):
        con.execute("DROP INDEX nope")


def test_drop_index_if_exists(con: alopex.Connection) -> None:
    con.execute("DROP INDEX IF EXISTS nope")


def test_drop_table_drops_its_indexes(indexed: alopex.Connection) -> None:
    indexed.execute("CREATE INDEX t_k ON t (k)")
    indexed.execute("DROP TABLE t")
    with pytest.raises(alopex.ProgrammingError):
        indexed.execute("DROP INDEX t_k")


# -- views -----------------------------------------------------------------------------------


def test_create_view_and_select_from_it(indexed: alopex.Connection) -> None:
    indexed.execute("CREATE VIEW big AS SELECT id, v FROM t WHERE v >= 20")
    assert rows(indexed, "SELECT * FROM big ORDER BY id") == [(2, 20), (3, 30)]


def test_view_reflects_later_changes(indexed: alopex.Connection) -> None:
    indexed.execute("CREATE VIEW big AS SELECT id FROM t WHERE v >= 20")
    indexed.execute("INSERT INTO t VALUES (4, 'c', 99)")
    indexed.execute("DELETE FROM t WHERE id = 2")
    assert rows(indexed, "SELECT id FROM big ORDER BY id") == [(3,), (4,)]


def test_view_with_column_names(indexed: alopex.Connection) -> None:
    indexed.execute("CREATE VIEW sums (key, total) AS SELECT k, sum(v) FROM t GROUP BY k")
    cur = indexed.execute("SELECT key, total FROM sums ORDER BY key")
    assert [d[0] for d in cur.description] == ["key", "total"]
    assert cur.fetchall() == [("a", 40), ("b", 20)]


def test_view_joined_with_its_table(indexed: alopex.Connection) -> None:
    indexed.execute("CREATE VIEW big AS SELECT id FROM t WHERE v >= 20")
    got = rows(indexed, "SELECT t.k FROM t JOIN big ON big.id = t.id ORDER BY t.id")
    assert got == [("b",), ("a",)]


def test_drop_view(indexed: alopex.Connection) -> None:
    indexed.execute("CREATE VIEW big AS SELECT id FROM t")
    indexed.execute("DROP VIEW big")
    with pytest.raises(alopex.ProgrammingError):
        indexed.execute("SELECT * FROM big")
    assert rows(indexed, "SELECT count(*) FROM t") == [(3,)]


def test_drop_view_if_exists(con: alopex.Connection) -> None:
    con.execute("DROP VIEW IF EXISTS nope")


def test_drop_missing_view_raises(con: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError):
        con.execute("DROP VIEW nope")


def test_view_over_a_missing_table_is_refused(con: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError):
        con.execute("CREATE VIEW v AS SELECT * FROM nope")


def test_cannot_insert_into_a_view(indexed: alopex.Connection) -> None:
    indexed.execute("CREATE VIEW big AS SELECT id FROM t")
    with pytest.raises(alopex.DatabaseError):
        indexed.execute("INSERT INTO big VALUES (9)")


# -- ALTER TABLE -----------------------------------------------------------------------------


def test_alter_add_column_fills_null(indexed: alopex.Connection) -> None:
    indexed.execute("ALTER TABLE t ADD COLUMN note TEXT")
    assert rows(indexed, "SELECT id, note FROM t ORDER BY id") == [
        (1, None),
        (2, None),
        (3, None),
    ]
    indexed.execute("INSERT INTO t VALUES (4, 'd', 40, 'hi')")
    assert rows(indexed, "SELECT note FROM t WHERE id = 4") == [("hi",)]


def test_alter_add_column_with_default(indexed: alopex.Connection) -> None:
    indexed.execute("ALTER TABLE t ADD COLUMN flag INTEGER DEFAULT 5")
    assert rows(indexed, "SELECT DISTINCT flag FROM t") == [(5,)]
    indexed.execute("INSERT INTO t (id) VALUES (9)")
    assert rows(indexed, "SELECT flag FROM t WHERE id = 9") == [(5,)]


def test_alter_add_column_without_the_column_keyword(indexed: alopex.Connection) -> None:
    indexed.execute("ALTER TABLE t ADD extra REAL")
    assert [d[0] for d in indexed.execute("SELECT * FROM t").description] == [
        "id",
        "k",
        "v",
        "extra",
    ]


def test_alter_add_existing_column_raises(indexed: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError):
        indexed.execute("ALTER TABLE t ADD COLUMN k TEXT")


def test_alter_drop_column(indexed: alopex.Connection) -> None:
    indexed.execute("ALTER TABLE t DROP COLUMN k")
    cur = indexed.execute("SELECT * FROM t ORDER BY id")
    assert [d[0] for d in cur.description] == ["id", "v"]
    assert cur.fetchall() == [(1, 10), (2, 20), (3, 30)]
    with pytest.raises(alopex.ProgrammingError):
        indexed.execute("SELECT k FROM t")


def test_alter_drop_missing_column_raises(indexed: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError):
        indexed.execute("ALTER TABLE t DROP COLUMN nope")


def test_alter_rename_column(indexed: alopex.Connection) -> None:
    indexed.execute("ALTER TABLE t RENAME COLUMN v TO amount")
    assert rows(indexed, "SELECT amount FROM t WHERE id = 2") == [(20,)]
    with pytest.raises(alopex.ProgrammingError):
        indexed.execute("SELECT v FROM t")


def test_alter_rename_table(indexed: alopex.Connection) -> None:
    indexed.execute("ALTER TABLE t RENAME TO things")
    assert rows(indexed, "SELECT count(*) FROM things") == [(3,)]
    with pytest.raises(alopex.ProgrammingError):
        indexed.execute("SELECT * FROM t")


def test_renamed_table_keeps_its_unique_index(indexed: alopex.Connection) -> None:
    indexed.execute("CREATE UNIQUE INDEX t_v ON t (v)")
    indexed.execute("ALTER TABLE t RENAME TO things")
    with pytest.raises(alopex.IntegrityError):
        indexed.execute("INSERT INTO things VALUES (9, 'z', 10)")


def test_renamed_column_keeps_its_constraints(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER NOT NULL)")
    con.execute("ALTER TABLE t RENAME COLUMN a TO b")
    with pytest.raises(alopex.IntegrityError):
        con.execute("INSERT INTO t (id) VALUES (1)")


def test_alter_missing_table_raises(con: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError):
        con.execute("ALTER TABLE nope ADD COLUMN a INTEGER")


# -- DDL is transactional --------------------------------------------------------------------


def test_create_table_is_undone_by_rollback(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (a INTEGER)")
    con.rollback()
    with pytest.raises(alopex.ProgrammingError):
        con.execute("SELECT * FROM t")


def test_drop_table_is_undone_by_rollback(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (a INTEGER)")
    con.execute("INSERT INTO t VALUES (1)")
    con.commit()
    con.execute("DROP TABLE t")
    con.rollback()
    assert rows(con, "SELECT a FROM t") == [(1,)]


def test_alter_table_is_undone_by_rollback(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (a INTEGER)")
    con.execute("INSERT INTO t VALUES (1)")
    con.commit()
    con.execute("ALTER TABLE t ADD COLUMN b TEXT")
    con.execute("ALTER TABLE t RENAME TO u")
    con.rollback()
    cur = con.execute("SELECT * FROM t")
    assert [d[0] for d in cur.description] == ["a"]
    assert cur.fetchall() == [(1,)]


def test_create_index_is_undone_by_rollback(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (a INTEGER)")
    con.commit()
    con.execute("CREATE UNIQUE INDEX t_a ON t (a)")
    con.rollback()
    con.execute("INSERT INTO t VALUES (1), (1)")
    assert rows(con, "SELECT count(*) FROM t") == [(2,)]


def test_created_table_is_visible_to_others_only_after_commit(
    open_rocks: Callable[[], alopex.Connection],
) -> None:
    first, second = open_rocks(), open_rocks()
    first.execute("CREATE TABLE t (a INTEGER)")
    with pytest.raises(alopex.ProgrammingError):
        second.execute("SELECT * FROM t")
    second.rollback()
    first.commit()
    assert second.execute("SELECT * FROM t").fetchall() == []


def test_dropped_table_is_gone_for_others_only_after_commit(
    open_rocks: Callable[[], alopex.Connection],
) -> None:
    first, second = open_rocks(), open_rocks()
    first.execute("CREATE TABLE t (a INTEGER)")
    first.execute("INSERT INTO t VALUES (1)")
    first.commit()
    first.execute("DROP TABLE t")
    assert second.execute("SELECT a FROM t").fetchall() == [(1,)]
    second.rollback()
    first.commit()
    with pytest.raises(alopex.ProgrammingError):
        second.execute("SELECT a FROM t")


def test_schema_survives_a_reopen(open_rocks: Callable[[], alopex.Connection]) -> None:
    first = open_rocks()
    first.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, u TEXT UNIQUE, n INTEGER DEFAULT 3)")
    first.execute("CREATE VIEW tv AS SELECT id, n FROM t")
    first.execute("INSERT INTO t (id, u) VALUES (1, 'a')")
    first.commit()
    first.close()
    again = open_rocks()
    assert again.execute("SELECT * FROM tv").fetchall() == [(1, 3)]
    with pytest.raises(alopex.IntegrityError):
        again.execute("INSERT INTO t (id, u) VALUES (2, 'a')")
