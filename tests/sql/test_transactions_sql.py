"""SQL transaction control: BEGIN / COMMIT / ROLLBACK, savepoints, autocommit, and
statement failures inside transactions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import alopex


def rows(con: alopex.Connection, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
    return con.execute(sql, params).fetchall()


def ids(con: alopex.Connection) -> list[int]:
    return [r[0] for r in rows(con, "SELECT id FROM t ORDER BY id")]


@pytest.fixture
def t(con: alopex.Connection) -> alopex.Connection:
    """A committed table ``t`` with rows 1 and 2, and autocommit on."""
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    con.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
    con.commit()
    con.autocommit = True
    return con


# -- BEGIN / COMMIT / ROLLBACK ---------------------------------------------------------------


def test_begin_rollback_undoes_the_statements(t: alopex.Connection) -> None:
    t.execute("BEGIN")
    t.execute("INSERT INTO t VALUES (3, 'c')")
    t.execute("DELETE FROM t WHERE id = 1")
    assert ids(t) == [2, 3]
    t.execute("ROLLBACK")
    assert ids(t) == [1, 2]


def test_begin_commit_keeps_the_statements(t: alopex.Connection) -> None:
    t.execute("BEGIN")
    t.execute("INSERT INTO t VALUES (3, 'c')")
    t.execute("COMMIT")
    t.rollback()
    assert ids(t) == [1, 2, 3]


def test_begin_transaction_and_end(t: alopex.Connection) -> None:
    t.execute("BEGIN TRANSACTION")
    t.execute("INSERT INTO t VALUES (3, 'c')")
    t.execute("END")
    t.execute("BEGIN")
    t.execute("INSERT INTO t VALUES (4, 'd')")
    t.execute("ROLLBACK TRANSACTION")
    assert ids(t) == [1, 2, 3]


def test_in_transaction_follows_begin_and_commit(t: alopex.Connection) -> None:
    assert not t.in_transaction
    t.execute("BEGIN")
    assert t.in_transaction
    t.execute("COMMIT")
    assert not t.in_transaction


def test_begin_inside_a_transaction_raises(t: alopex.Connection) -> None:
    t.execute("BEGIN")
    with pytest.raises(alopex.DatabaseError):
        t.execute("BEGIN")


def test_connection_rollback_ends_a_sql_transaction(t: alopex.Connection) -> None:
    t.execute("BEGIN")
    t.execute("INSERT INTO t VALUES (3, 'c')")
    t.rollback()
    assert ids(t) == [1, 2]
    t.execute("INSERT INTO t VALUES (4, 'd')")  # autocommit again
    t.rollback()
    assert ids(t) == [1, 2, 4]


def test_sql_commit_with_autocommit_off(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    con.execute("INSERT INTO t VALUES (1)")
    con.execute("COMMIT")
    con.execute("INSERT INTO t VALUES (2)")
    con.execute("ROLLBACK")
    assert ids(con) == [1]


# -- autocommit ------------------------------------------------------------------------------


def test_autocommit_on_commits_each_statement(t: alopex.Connection) -> None:
    t.execute("INSERT INTO t VALUES (3, 'c')")
    assert not t.in_transaction
    t.rollback()
    assert ids(t) == [1, 2, 3]


def test_autocommit_off_keeps_a_transaction_open(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    con.commit()
    con.execute("INSERT INTO t VALUES (1)")
    assert con.in_transaction
    con.rollback()
    assert ids(con) == []


def test_switching_autocommit_on_commits_the_open_transaction(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    con.execute("INSERT INTO t VALUES (1)")
    con.autocommit = True
    assert con.autocommit is True
    con.rollback()
    assert ids(con) == [1]


def test_switching_autocommit_off_again(t: alopex.Connection) -> None:
    t.autocommit = False
    t.execute("INSERT INTO t VALUES (3, 'c')")
    t.rollback()
    assert ids(t) == [1, 2]


def test_autocommit_statements_are_visible_to_another_connection(
    open_rocks: Callable[[], alopex.Connection],
) -> None:
    writer, reader = open_rocks(), open_rocks()
    writer.autocommit = True
    reader.autocommit = True
    writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    writer.execute("INSERT INTO t VALUES (1, 'a')")
    assert rows(reader, "SELECT id, v FROM t") == [(1, "a")]


def test_explicit_transaction_is_invisible_to_others_until_commit(
    open_rocks: Callable[[], alopex.Connection],
) -> None:
    writer, reader = open_rocks(), open_rocks()
    writer.autocommit = True
    reader.autocommit = True
    writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    writer.execute("BEGIN")
    writer.execute("INSERT INTO t VALUES (1, 'a')")
    assert rows(reader, "SELECT count(*) FROM t") == [(0,)]
    writer.execute("COMMIT")
    assert rows(reader, "SELECT count(*) FROM t") == [(1,)]


def test_a_transaction_reads_one_snapshot(open_rocks: Callable[[], alopex.Connection]) -> None:
    writer, reader = open_rocks(), open_rocks()
    writer.autocommit = True
    writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    writer.execute("INSERT INTO t VALUES (1, 'a')")
    assert rows(reader, "SELECT count(*) FROM t") == [(1,)]  # opens the reader's transaction
    writer.execute("INSERT INTO t VALUES (2, 'b')")
    assert rows(reader, "SELECT count(*) FROM t") == [(1,)]
    reader.commit()
    assert rows(reader, "SELECT count(*) FROM t") == [(2,)]


def test_concurrent_updates_of_one_row_conflict(
    open_rocks: Callable[[], alopex.Connection],
) -> None:
    first, second = open_rocks(), open_rocks()
    first.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)")
    first.execute("INSERT INTO t VALUES (1, 0)")
    first.commit()
    first.execute("UPDATE t SET v = v + 1 WHERE id = 1")
    second.execute("UPDATE t SET v = v + 10 WHERE id = 1")
    first.commit()
    with pytest.raises(alopex.TransactionConflict):
        second.commit()
    assert rows(second, "SELECT v FROM t") == [(1,)]


# -- savepoints ------------------------------------------------------------------------------


def test_rollback_to_savepoint_undoes_only_later_statements(t: alopex.Connection) -> None:
    t.execute("BEGIN")
    t.execute("INSERT INTO t VALUES (3, 'c')")
    t.execute("SAVEPOINT sp")
    t.execute("INSERT INTO t VALUES (4, 'd')")
    t.execute("UPDATE t SET v = 'changed' WHERE id = 1")
    t.execute("ROLLBACK TO sp")
    assert rows(t, "SELECT id, v FROM t ORDER BY id") == [(1, "a"), (2, "b"), (3, "c")]
    t.execute("COMMIT")
    assert ids(t) == [1, 2, 3]


def test_rollback_to_savepoint_keyword_form(t: alopex.Connection) -> None:
    t.execute("BEGIN")
    t.execute("SAVEPOINT sp")
    t.execute("INSERT INTO t VALUES (3, 'c')")
    t.execute("ROLLBACK TRANSACTION TO SAVEPOINT sp")
    t.execute("COMMIT")
    assert ids(t) == [1, 2]


def test_release_keeps_the_work(t: alopex.Connection) -> None:
    t.execute("BEGIN")
    t.execute("SAVEPOINT sp")
    t.execute("INSERT INTO t VALUES (3, 'c')")
    t.execute("RELEASE sp")
    t.execute("COMMIT")
    assert ids(t) == [1, 2, 3]


def test_release_savepoint_keyword_form(t: alopex.Connection) -> None:
    t.execute("BEGIN")
    t.execute("SAVEPOINT sp")
    t.execute("INSERT INTO t VALUES (3, 'c')")
    t.execute("RELEASE SAVEPOINT sp")
    t.execute("COMMIT")
    assert ids(t) == [1, 2, 3]


def test_savepoint_survives_rollback_to(t: alopex.Connection) -> None:
    t.execute("BEGIN")
    t.execute("SAVEPOINT sp")
    t.execute("INSERT INTO t VALUES (3, 'c')")
    t.execute("ROLLBACK TO sp")
    t.execute("INSERT INTO t VALUES (4, 'd')")
    t.execute("ROLLBACK TO sp")
    t.execute("INSERT INTO t VALUES (5, 'e')")
    t.execute("COMMIT")
    assert ids(t) == [1, 2, 5]


def test_nested_savepoints(t: alopex.Connection) -> None:
    t.execute("BEGIN")
    t.execute("SAVEPOINT outer_sp")
    t.execute("INSERT INTO t VALUES (3, 'c')")
    t.execute("SAVEPOINT inner_sp")
    t.execute("INSERT INTO t VALUES (4, 'd')")
    t.execute("ROLLBACK TO inner_sp")
    assert ids(t) == [1, 2, 3]
    t.execute("INSERT INTO t VALUES (5, 'e')")
    t.execute("ROLLBACK TO outer_sp")
    assert ids(t) == [1, 2]
    t.execute("COMMIT")
    assert ids(t) == [1, 2]


def test_rollback_to_an_outer_savepoint_forgets_inner_ones(t: alopex.Connection) -> None:
    t.execute("BEGIN")
    t.execute("SAVEPOINT a")
    t.execute("SAVEPOINT b")
    t.execute("ROLLBACK TO a")
    with pytest.raises(alopex.DatabaseError):
        t.execute("ROLLBACK TO b")


def test_savepoint_outside_begin_starts_a_transaction(t: alopex.Connection) -> None:
    t.execute("SAVEPOINT sp")
    assert t.in_transaction
    t.execute("INSERT INTO t VALUES (3, 'c')")
    t.execute("ROLLBACK TO sp")
    t.execute("INSERT INTO t VALUES (4, 'd')")
    t.execute("RELEASE sp")  # the outermost release commits (SQLite)
    assert not t.in_transaction
    t.rollback()
    assert ids(t) == [1, 2, 4]


def test_rollback_to_unknown_savepoint_raises(t: alopex.Connection) -> None:
    t.execute("BEGIN")
    with pytest.raises(alopex.DatabaseError, match="nope"):
        t.execute("ROLLBACK TO nope")


def test_release_unknown_savepoint_raises(t: alopex.Connection) -> None:
    t.execute("BEGIN")
    with pytest.raises(alopex.DatabaseError, match="nope"):
        t.execute("RELEASE nope")


def test_savepoint_undoes_ddl(t: alopex.Connection) -> None:
    t.execute("BEGIN")
    t.execute("SAVEPOINT sp")
    t.execute("CREATE TABLE u (x INTEGER)")
    t.execute("INSERT INTO u VALUES (1)")
    t.execute("ROLLBACK TO sp")
    with pytest.raises(alopex.ProgrammingError):
        t.execute("SELECT * FROM u")


def test_savepoint_with_autocommit_off(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    con.execute("INSERT INTO t VALUES (1)")
    con.execute("SAVEPOINT sp")
    con.execute("INSERT INTO t VALUES (2)")
    con.execute("ROLLBACK TO sp")
    con.commit()
    assert ids(con) == [1]


# -- statement failures inside transactions --------------------------------------------------


def test_failed_statement_keeps_earlier_work_of_the_transaction(t: alopex.Connection) -> None:
    t.execute("BEGIN")
    t.execute("INSERT INTO t VALUES (3, 'c')")
    with pytest.raises(alopex.IntegrityError):
        t.execute("INSERT INTO t VALUES (4, 'd'), (1, 'dup')")
    t.execute("INSERT INTO t VALUES (5, 'e')")
    t.execute("COMMIT")
    assert ids(t) == [1, 2, 3, 5]


def test_failed_statement_with_autocommit_off(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    con.execute("INSERT INTO t VALUES (1, 'a')")
    with pytest.raises(alopex.ProgrammingError):
        con.execute("INSERT INTO nope VALUES (1)")
    with pytest.raises(alopex.DataError):
        con.execute("INSERT INTO t VALUES ('x', 'y')")
    con.execute("INSERT INTO t VALUES (2, 'b')")
    con.commit()
    con.rollback()
    assert ids(con) == [1, 2]


def test_failed_update_keeps_earlier_updates(t: alopex.Connection) -> None:
    t.execute("BEGIN")
    t.execute("UPDATE t SET v = 'x' WHERE id = 1")
    with pytest.raises(alopex.IntegrityError):
        t.execute("UPDATE t SET id = 1 WHERE id = 2")
    t.execute("COMMIT")
    assert rows(t, "SELECT id, v FROM t ORDER BY id") == [(1, "x"), (2, "b")]


def test_failed_ddl_keeps_earlier_work(t: alopex.Connection) -> None:
    t.execute("BEGIN")
    t.execute("CREATE TABLE u (x INTEGER)")
    with pytest.raises(alopex.ProgrammingError):
        t.execute("CREATE TABLE u (y INTEGER)")
    t.execute("INSERT INTO u VALUES (1)")
    t.execute("COMMIT")
    assert rows(t, "SELECT x FROM u") == [(1,)]


def test_failed_statement_in_autocommit_mode_leaves_no_transaction(t: alopex.Connection) -> None:
    with pytest.raises(alopex.IntegrityError):
        t.execute("INSERT INTO t VALUES (1, 'dup')")
    assert not t.in_transaction
    t.execute("INSERT INTO t VALUES (3, 'c')")
    t.rollback()
    assert ids(t) == [1, 2, 3]
