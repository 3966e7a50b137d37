"""INSERT / UPDATE / DELETE, upserts, RETURNING, and atomic failing statements."""

from __future__ import annotations

from typing import Any

import pytest

import alopex


def rows(con: alopex.Connection, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
    return con.execute(sql, params).fetchall()


@pytest.fixture
def kv(con: alopex.Connection) -> alopex.Connection:
    con.execute("CREATE TABLE kv (id INTEGER PRIMARY KEY, name TEXT, n INTEGER DEFAULT 0)")
    con.execute("INSERT INTO kv VALUES (1, 'a', 10), (2, 'b', 20), (3, 'c', 30)")
    return con


# -- INSERT ----------------------------------------------------------------------------------


def test_multi_row_insert(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (a INTEGER, b TEXT)")
    cur = con.execute("INSERT INTO t VALUES (1, 'x'), (2, 'y'), (3, 'z')")
    assert cur.rowcount == 3
    assert rows(con, "SELECT a, b FROM t ORDER BY a") == [(1, "x"), (2, "y"), (3, "z")]


def test_insert_with_a_column_list_in_another_order(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (a INTEGER, b TEXT, c REAL)")
    con.execute("INSERT INTO t (c, a) VALUES (1.5, 7)")
    assert rows(con, "SELECT a, b, c FROM t") == [(7, None, 1.5)]


def test_insert_with_expressions(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (a INTEGER, b TEXT)")
    con.execute("INSERT INTO t VALUES (2 * 3 + 1, upper('x') || 'y')")
    assert rows(con, "SELECT a, b FROM t") == [(7, "Xy")]


def test_insert_select(kv: alopex.Connection) -> None:
    kv.execute("CREATE TABLE copy (id INTEGER, label TEXT)")
    cur = kv.execute("INSERT INTO copy (id, label) SELECT id * 10, name FROM kv WHERE n > 10")
    assert cur.rowcount == 2
    assert rows(kv, "SELECT id, label FROM copy ORDER BY id") == [(20, "b"), (30, "c")]


def test_insert_select_from_the_same_table(kv: alopex.Connection) -> None:
    kv.execute("INSERT INTO kv (id, name, n) SELECT id + 100, name, n FROM kv")
    assert rows(kv, "SELECT count(*), sum(id) FROM kv") == [(6, 312)]


def test_insert_uses_column_defaults(kv: alopex.Connection) -> None:
    kv.execute("INSERT INTO kv (id, name) VALUES (4, 'd')")
    assert rows(kv, "SELECT n FROM kv WHERE id = 4") == [(0,)]


def test_insert_default_keyword(kv: alopex.Connection) -> None:
    kv.execute("INSERT INTO kv VALUES (4, 'd', DEFAULT)")
    assert rows(kv, "SELECT n FROM kv WHERE id = 4") == [(0,)]


def test_insert_default_values(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT DEFAULT 'x', n INTEGER)")
    con.execute("INSERT INTO t DEFAULT VALUES")
    assert rows(con, "SELECT id, s, n FROM t") == [(1, "x", None)]


def test_insert_too_many_values_raises(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (a INTEGER, b INTEGER)")
    with pytest.raises(alopex.ProgrammingError):
        con.execute("INSERT INTO t VALUES (1, 2, 3)")


def test_insert_into_unknown_column_raises(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (a INTEGER)")
    with pytest.raises(alopex.ProgrammingError, match="zzz"):
        con.execute("INSERT INTO t (zzz) VALUES (1)")


# -- upserts ---------------------------------------------------------------------------------


def test_on_conflict_do_nothing(kv: alopex.Connection) -> None:
    cur = kv.execute("INSERT INTO kv VALUES (1, 'new', 0), (4, 'd', 40) ON CONFLICT DO NOTHING")
    assert cur.rowcount == 1
    assert rows(kv, "SELECT id, name FROM kv ORDER BY id") == [
        (1, "a"),
        (2, "b"),
        (3, "c"),
        (4, "d"),
    ]


def test_on_conflict_with_target_do_nothing(kv: alopex.Connection) -> None:
    kv.execute("INSERT INTO kv VALUES (2, 'x', 0) ON CONFLICT (id) DO NOTHING")
    assert rows(kv, "SELECT name, n FROM kv WHERE id = 2") == [("b", 20)]


def test_on_conflict_do_update_with_excluded(kv: alopex.Connection) -> None:
    kv.execute(
        "INSERT INTO kv VALUES (2, 'bee', 21), (5, 'e', 50) "
        "ON CONFLICT (id) DO UPDATE SET name = excluded.name"
    )
    assert rows(kv, "SELECT id, name, n FROM kv WHERE id IN (2, 5) ORDER BY id") == [
        (2, "bee", 20),
        (5, "e", 50),
    ]


def test_on_conflict_do_update_reads_the_old_row(kv: alopex.Connection) -> None:
    kv.execute(
        "INSERT INTO kv (id, name, n) VALUES (3, 'c', 5) "
        "ON CONFLICT (id) DO UPDATE SET n = kv.n + excluded.n"
    )
    assert rows(kv, "SELECT n FROM kv WHERE id = 3") == [(35,)]


def test_on_conflict_do_update_with_where(kv: alopex.Connection) -> None:
    kv.execute(
        "INSERT INTO kv VALUES (1, 'x', 0), (2, 'y', 0) "
        "ON CONFLICT (id) DO UPDATE SET name = excluded.name WHERE kv.n > 15"
    )
    assert rows(kv, "SELECT id, name FROM kv WHERE id <= 2 ORDER BY id") == [(1, "a"), (2, "y")]


def test_on_conflict_on_a_unique_column(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE u (id INTEGER PRIMARY KEY, email TEXT UNIQUE, hits INTEGER)")
    con.execute("INSERT INTO u VALUES (1, 'a@x', 1)")
    con.execute(
        "INSERT INTO u VALUES (2, 'a@x', 1) ON CONFLICT (email) DO UPDATE SET hits = hits + 1"
    )
    assert rows(con, "SELECT id, email, hits FROM u") == [(1, "a@x", 2)]


def test_insert_or_replace(kv: alopex.Connection) -> None:
    kv.execute("INSERT OR REPLACE INTO kv VALUES (1, 'z', 99), (4, 'd', 40)")
    assert rows(kv, "SELECT id, name, n FROM kv WHERE id IN (1, 4) ORDER BY id") == [
        (1, "z", 99),
        (4, "d", 40),
    ]
    assert rows(kv, "SELECT count(*) FROM kv") == [(4,)]


def test_replace_into(kv: alopex.Connection) -> None:
    kv.execute("REPLACE INTO kv VALUES (2, 'bb', 22)")
    assert rows(kv, "SELECT name, n FROM kv WHERE id = 2") == [("bb", 22)]


def test_insert_or_replace_removes_a_unique_clash(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE u (id INTEGER PRIMARY KEY, email TEXT UNIQUE)")
    con.execute("INSERT INTO u VALUES (1, 'a@x'), (2, 'b@x')")
    con.execute("INSERT OR REPLACE INTO u VALUES (3, 'a@x')")
    assert rows(con, "SELECT id, email FROM u ORDER BY id") == [(2, "b@x"), (3, "a@x")]


def test_insert_or_ignore(kv: alopex.Connection) -> None:
    cur = kv.execute("INSERT OR IGNORE INTO kv VALUES (1, 'z', 0), (9, 'i', 90)")
    assert cur.rowcount == 1
    assert rows(kv, "SELECT name FROM kv WHERE id IN (1, 9) ORDER BY id") == [("a",), ("i",)]


# -- UPDATE / DELETE -------------------------------------------------------------------------


def test_update_with_where(kv: alopex.Connection) -> None:
    cur = kv.execute("UPDATE kv SET n = n * 2, name = name || '!' WHERE id >= 2")
    assert cur.rowcount == 2
    assert rows(kv, "SELECT id, name, n FROM kv ORDER BY id") == [
        (1, "a", 10),
        (2, "b!", 40),
        (3, "c!", 60),
    ]


def test_update_every_row(kv: alopex.Connection) -> None:
    assert kv.execute("UPDATE kv SET n = 0").rowcount == 3
    assert rows(kv, "SELECT DISTINCT n FROM kv") == [(0,)]


def test_update_assignments_read_the_old_row(kv: alopex.Connection) -> None:
    kv.execute("UPDATE kv SET n = id, id = n WHERE id = 1")
    assert rows(kv, "SELECT id, n FROM kv WHERE name = 'a'") == [(10, 1)]


def test_update_the_primary_key(kv: alopex.Connection) -> None:
    kv.execute("UPDATE kv SET id = 7 WHERE id = 1")
    assert rows(kv, "SELECT id FROM kv ORDER BY id") == [(2,), (3,), (7,)]
    assert rows(kv, "SELECT name FROM kv WHERE id = 7") == [("a",)]


def test_update_with_a_subquery(kv: alopex.Connection) -> None:
    kv.execute("UPDATE kv SET n = (SELECT max(n) FROM kv) WHERE id = 1")
    assert rows(kv, "SELECT n FROM kv WHERE id = 1") == [(30,)]


def test_update_with_parameters(kv: alopex.Connection) -> None:
    kv.execute("UPDATE kv SET name = ? WHERE id = ?", ("two", 2))
    assert rows(kv, "SELECT name FROM kv WHERE id = 2") == [("two",)]


def test_delete_with_where(kv: alopex.Connection) -> None:
    cur = kv.execute("DELETE FROM kv WHERE n < 25")
    assert cur.rowcount == 2
    assert rows(kv, "SELECT id FROM kv") == [(3,)]


def test_delete_every_row(kv: alopex.Connection) -> None:
    assert kv.execute("DELETE FROM kv").rowcount == 3
    assert rows(kv, "SELECT count(*) FROM kv") == [(0,)]


def test_delete_with_a_subquery(kv: alopex.Connection) -> None:
    kv.execute("DELETE FROM kv WHERE n = (SELECT min(n) FROM kv)")
    assert rows(kv, "SELECT id FROM kv ORDER BY id") == [(2,), (3,)]


def test_deleted_key_can_be_inserted_again(kv: alopex.Connection) -> None:
    kv.execute("DELETE FROM kv WHERE id = 1")
    kv.execute("INSERT INTO kv VALUES (1, 'again', 1)")
    assert rows(kv, "SELECT name FROM kv WHERE id = 1") == [("again",)]


# -- RETURNING -------------------------------------------------------------------------------


def test_insert_returning(kv: alopex.Connection) -> None:
    cur = kv.execute("INSERT INTO kv (id, name) VALUES (4, 'd'), (5, 'e') RETURNING id, n")
    assert [d[0] for d in cur.description] == ["id", "n"]
    assert cur.fetchall() == [(4, 0), (5, 0)]


def test_insert_returning_generated_id(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT)")
    con.execute("INSERT INTO t (s) VALUES ('a')")
    assert rows(con, "INSERT INTO t (s) VALUES ('b') RETURNING id") == [(2,)]


def test_update_returning(kv: alopex.Connection) -> None:
    got = rows(kv, "UPDATE kv SET n = n + 1 WHERE id <= 2 RETURNING id, n AS new_n")
    assert sorted(got) == [(1, 11), (2, 21)]


def test_delete_returning(kv: alopex.Connection) -> None:
    got = rows(kv, "DELETE FROM kv WHERE id = 3 RETURNING *")
    assert got == [(3, "c", 30)]


def test_returning_expression(kv: alopex.Connection) -> None:
    cur = kv.execute("INSERT INTO kv VALUES (6, 'f', 6) RETURNING n * 2 AS twice")
    assert [d[0] for d in cur.description] == ["twice"]
    assert cur.fetchall() == [(12,)]


# -- constraint errors: messages and atomicity -----------------------------------------------


def test_primary_key_violation_names_table_column_and_value(kv: alopex.Connection) -> None:
    with pytest.raises(alopex.IntegrityError) as caught:
        kv.execute("INSERT INTO kv VALUES (2, 'dup', 0)")
    message = str(caught.value)
    assert "kv" in message
    assert "id" in message
    assert "2" in message


def test_unique_violation_names_table_column_and_value(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT UNIQUE)")
    con.execute("INSERT INTO users VALUES (1, 'ann@example.com')")
    with pytest.raises(alopex.IntegrityError) as caught:
        con.execute("INSERT INTO users VALUES (2, 'ann@example.com')")
    message = str(caught.value)
    assert "users" in message
    assert "email" in message
    assert "ann@example.com" in message


def test_not_null_violation_names_table_and_column(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    with pytest.raises(alopex.IntegrityError) as caught:
        con.execute("INSERT INTO users (id) VALUES (1)")
    assert "users" in str(caught.value)
    assert "name" in str(caught.value)


def test_check_violation_names_table_and_value(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE stock (item TEXT, qty INTEGER CHECK (qty >= 0))")
    with pytest.raises(alopex.IntegrityError) as caught:
        con.execute("INSERT INTO stock VALUES ('bolt', -5)")
    message = str(caught.value)
    assert "stock" in message
    assert "qty" in message
    assert "-5" in message


def test_failing_multi_row_insert_inserts_nothing(kv: alopex.Connection) -> None:
    with pytest.raises(alopex.IntegrityError):
        kv.execute("INSERT INTO kv VALUES (10, 'x', 0), (11, 'y', 0), (1, 'dup', 0)")
    assert rows(kv, "SELECT id FROM kv ORDER BY id") == [(1,), (2,), (3,)]


def test_duplicate_within_one_insert_inserts_nothing(kv: alopex.Connection) -> None:
    with pytest.raises(alopex.IntegrityError):
        kv.execute("INSERT INTO kv VALUES (10, 'x', 0), (10, 'y', 0)")
    assert rows(kv, "SELECT count(*) FROM kv") == [(3,)]


def test_type_error_in_a_later_row_inserts_nothing(kv: alopex.Connection) -> None:
    with pytest.raises(alopex.DataError):
        kv.execute("INSERT INTO kv VALUES (10, 'x', 1), (11, 'y', 'not a number')")
    assert rows(kv, "SELECT count(*) FROM kv") == [(3,)]


def test_failing_insert_select_inserts_nothing(kv: alopex.Connection) -> None:
    with pytest.raises(alopex.IntegrityError):
        kv.execute("INSERT INTO kv (id, name) SELECT id + 2, name FROM kv")
    assert rows(kv, "SELECT id FROM kv ORDER BY id") == [(1,), (2,), (3,)]


def test_failing_update_changes_nothing(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, u INTEGER UNIQUE, n INTEGER)")
    con.execute("INSERT INTO t VALUES (1, 1, 0), (2, 2, 0), (3, 3, 0)")
    with pytest.raises(alopex.IntegrityError):
        con.execute("UPDATE t SET n = 1, u = CASE WHEN id = 3 THEN 1 ELSE u END")
    assert rows(con, "SELECT id, u, n FROM t ORDER BY id") == [(1, 1, 0), (2, 2, 0), (3, 3, 0)]


def test_failing_update_by_type_error_changes_nothing(kv: alopex.Connection) -> None:
    with pytest.raises(alopex.DataError):
        kv.execute("UPDATE kv SET n = CASE WHEN id = 3 THEN 'bad' ELSE 1 END")
    assert rows(kv, "SELECT n FROM kv ORDER BY id") == [(10,), (20,), (30,)]
