"""PEP 249 behaviour of connections and cursors, and the result shortcuts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest

import alopex


@pytest.fixture
def people(con: alopex.Connection) -> alopex.Connection:
    con.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)")
    con.execute("INSERT INTO people VALUES (1, 'Ann', 31), (2, 'Ben', 25), (3, 'Cy', 40)")
    return con


# -- module globals and the exception tree ---------------------------------------------------


def test_module_globals() -> None:
    assert alopex.apilevel == "2.0"
    assert alopex.threadsafety in (0, 1, 2, 3)
    assert alopex.paramstyle == "qmark"


@pytest.mark.parametrize(
    "name",
    [
        "InterfaceError",
        "DatabaseError",
        "DataError",
        "OperationalError",
        "IntegrityError",
        "InternalError",
        "ProgrammingError",
        "NotSupportedError",
    ],
)
def test_exception_classes_form_the_pep249_tree(name: str) -> None:
    cls = getattr(alopex, name)
    assert issubclass(cls, alopex.Error)
    assert issubclass(cls, alopex.AlopexError)
    if name != "InterfaceError":
        assert issubclass(cls, alopex.DatabaseError)


def test_error_is_the_alopex_root_error() -> None:
    assert alopex.Error is alopex.AlopexError
    assert issubclass(alopex.Error, Exception)
    assert issubclass(alopex.Warning, Exception)


# -- cursor, execute, fetch ------------------------------------------------------------------


def test_cursor_execute_returns_the_cursor(people: alopex.Connection) -> None:
    cur = people.cursor()
    assert cur.execute("SELECT name FROM people WHERE id = 1") is cur
    assert cur.fetchall() == [("Ann",)]


def test_fetchone_walks_rows_then_returns_none(people: alopex.Connection) -> None:
    cur = people.cursor()
    cur.execute("SELECT id FROM people ORDER BY id")
    assert cur.fetchone() == (1,)
    assert cur.fetchone() == (2,)
    assert cur.fetchone() == (3,)
    assert cur.fetchone() is None


def test_fetchmany_uses_size_then_arraysize(people: alopex.Connection) -> None:
    cur = people.cursor()
    cur.execute("SELECT id FROM people ORDER BY id")
    assert cur.arraysize == 1
    assert cur.fetchmany(2) == [(1,), (2,)]
    assert cur.fetchmany() == [(3,)]
    assert cur.fetchmany(5) == []


def test_fetchall_returns_the_remaining_rows(people: alopex.Connection) -> None:
    cur = people.cursor()
    cur.execute("SELECT id, name FROM people ORDER BY id")
    assert cur.fetchone() == (1, "Ann")
    assert cur.fetchall() == [(2, "Ben"), (3, "Cy")]
    assert cur.fetchall() == []


def test_rows_are_tuples(people: alopex.Connection) -> None:
    rows = people.execute("SELECT id, name FROM people ORDER BY id").fetchall()
    assert all(type(row) is tuple for row in rows)


def test_cursor_is_iterable(people: alopex.Connection) -> None:
    cur = people.cursor().execute("SELECT name FROM people ORDER BY id")
    assert list(cur) == [("Ann",), ("Ben",), ("Cy",)]


def test_fetch_before_execute_raises(con: alopex.Connection) -> None:
    with pytest.raises(alopex.Error):
        con.cursor().fetchone()


def test_connection_execute_shortcut(people: alopex.Connection) -> None:
    assert people.execute("SELECT count(*) FROM people").fetchall() == [(3,)]


def test_empty_result(people: alopex.Connection) -> None:
    cur = people.execute("SELECT id FROM people WHERE id > 100")
    assert cur.fetchall() == []
    assert [d[0] for d in cur.description] == ["id"]


# -- description -----------------------------------------------------------------------------


def test_description_names_columns_and_aliases(people: alopex.Connection) -> None:
    cur = people.execute("SELECT id, name AS who, age + 1 AS next_age FROM people")
    assert [d[0] for d in cur.description] == ["id", "who", "next_age"]
    assert all(len(d) == 7 for d in cur.description)


def test_description_of_star_lists_table_columns(people: alopex.Connection) -> None:
    cur = people.execute("SELECT * FROM people")
    assert [d[0] for d in cur.description] == ["id", "name", "age"]


def test_description_is_none_without_a_result_set(people: alopex.Connection) -> None:
    cur = people.execute("INSERT INTO people VALUES (4, 'Di', 22)")
    assert cur.description is None
    assert people.cursor().description is None


# -- rowcount --------------------------------------------------------------------------------


def test_rowcount_of_insert(people: alopex.Connection) -> None:
    cur = people.execute("INSERT INTO people VALUES (4, 'Di', 22), (5, 'Ed', 50)")
    assert cur.rowcount == 2


def test_rowcount_of_update(people: alopex.Connection) -> None:
    cur = people.execute("UPDATE people SET age = age + 1 WHERE age > 30")
    assert cur.rowcount == 2


def test_rowcount_of_update_matching_nothing(people: alopex.Connection) -> None:
    assert people.execute("UPDATE people SET age = 0 WHERE id = 99").rowcount == 0


def test_rowcount_of_delete(people: alopex.Connection) -> None:
    assert people.execute("DELETE FROM people WHERE id <> 2").rowcount == 2


def test_rowcount_of_select_is_minus_one_or_the_row_count(people: alopex.Connection) -> None:
    cur = people.execute("SELECT * FROM people")
    assert cur.rowcount in (-1, 3)


def test_rowcount_before_execute_is_minus_one(con: alopex.Connection) -> None:
    assert con.cursor().rowcount == -1


# -- executemany -----------------------------------------------------------------------------


def test_executemany_inserts_every_row(people: alopex.Connection) -> None:
    cur = people.cursor()
    cur.executemany(
        "INSERT INTO people (id, name, age) VALUES (?, ?, ?)",
        [(10, "Xa", 1), (11, "Xb", 2), (12, "Xc", 3)],
    )
    assert cur.rowcount == 3
    rows = people.execute("SELECT id, name, age FROM people WHERE id >= 10 ORDER BY id")
    assert rows.fetchall() == [(10, "Xa", 1), (11, "Xb", 2), (12, "Xc", 3)]


def test_executemany_with_named_parameters(people: alopex.Connection) -> None:
    people.executemany(
        "UPDATE people SET age = :age WHERE id = :id",
        [{"id": 1, "age": 60}, {"id": 2, "age": 61}],
    )
    rows = people.execute("SELECT id, age FROM people ORDER BY id").fetchall()
    assert rows == [(1, 60), (2, 61), (3, 40)]


def test_executemany_with_a_generator(people: alopex.Connection) -> None:
    people.executemany(
        "INSERT INTO people (id, name) VALUES (?, ?)", ((n, f"p{n}") for n in range(20, 25))
    )
    assert people.execute("SELECT count(*) FROM people").fetchall() == [(8,)]


# -- parameters ------------------------------------------------------------------------------


def test_qmark_parameters(people: alopex.Connection) -> None:
    rows = people.execute("SELECT name FROM people WHERE age > ? AND age < ?", (26, 41))
    assert sorted(rows.fetchall()) == [("Ann",), ("Cy",)]


def test_named_parameters(people: alopex.Connection) -> None:
    rows = people.execute("SELECT name FROM people WHERE id = :id", {"id": 2}).fetchall()
    assert rows == [("Ben",)]


def test_named_parameter_used_twice(con: alopex.Connection) -> None:
    assert con.execute("SELECT :x + :x", {"x": 21}).fetchall() == [(42,)]


def test_parameters_as_a_list(people: alopex.Connection) -> None:
    assert people.execute("SELECT name FROM people WHERE id = ?", [3]).fetchall() == [("Cy",)]


def test_parameter_values_round_trip(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE p (i INTEGER, r REAL, t TEXT, b BLOB, n INTEGER)")
    con.execute("INSERT INTO p VALUES (?, ?, ?, ?, ?)", (7, 2.5, "ünï", b"\x00\xff", None))
    assert con.execute("SELECT * FROM p").fetchall() == [(7, 2.5, "ünï", b"\x00\xff", None)]


def test_parameters_are_not_sql(people: alopex.Connection) -> None:
    hostile = "x'); DROP TABLE people; --"
    people.execute("INSERT INTO people (id, name) VALUES (?, ?)", (9, hostile))
    assert people.execute("SELECT name FROM people WHERE id = 9").fetchall() == [(hostile,)]
    assert people.execute("SELECT count(*) FROM people").fetchall() == [(4,)]


def test_too_few_parameters(people: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError):
        people.execute("SELECT * FROM people WHERE id = ? AND age = ?", (1,))


def test_too_many_parameters(people: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError):
        people.execute("SELECT * FROM people WHERE id = ?", (1, 2))


def test_parameters_without_placeholders(people: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError):
        people.execute("SELECT * FROM people", (1,))


def test_missing_named_parameter(people: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError):
        people.execute("SELECT * FROM people WHERE id = :id", {"other": 1})


def test_wrong_parameter_count_in_executemany(people: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError):
        people.executemany("INSERT INTO people (id, name) VALUES (?, ?)", [(30, "a"), (31,)])


def test_parameters_of_the_wrong_kind(people: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError):
        people.execute("SELECT * FROM people WHERE id = ?", 1)  # type: ignore[arg-type]


# -- commit, rollback, close -----------------------------------------------------------------


def test_autocommit_is_off_by_default(con: alopex.Connection) -> None:
    assert con.autocommit is False


def test_rollback_discards_uncommitted_rows(people: alopex.Connection) -> None:
    people.commit()
    people.execute("INSERT INTO people VALUES (4, 'Di', 22)")
    people.rollback()
    assert people.execute("SELECT count(*) FROM people").fetchall() == [(3,)]


def test_commit_keeps_rows_across_rollback(people: alopex.Connection) -> None:
    people.commit()
    people.rollback()
    assert people.execute("SELECT count(*) FROM people").fetchall() == [(3,)]


def test_commit_makes_rows_visible_to_another_connection(
    open_rocks: Callable[[], alopex.Connection],
) -> None:
    writer, reader = open_rocks(), open_rocks()
    writer.execute("CREATE TABLE t (x INTEGER)")
    writer.execute("INSERT INTO t VALUES (1)")
    writer.commit()
    assert reader.execute("SELECT x FROM t").fetchall() == [(1,)]


def test_uncommitted_rows_are_invisible_to_another_connection(
    open_rocks: Callable[[], alopex.Connection],
) -> None:
    writer, reader = open_rocks(), open_rocks()
    writer.execute("CREATE TABLE t (x INTEGER)")
    writer.commit()
    writer.execute("INSERT INTO t VALUES (1)")
    assert reader.execute("SELECT x FROM t").fetchall() == []


def test_close_rolls_back_uncommitted_work(open_rocks: Callable[[], alopex.Connection]) -> None:
    first = open_rocks()
    first.execute("CREATE TABLE t (x INTEGER)")
    first.commit()
    first.execute("INSERT INTO t VALUES (1)")
    first.close()
    assert open_rocks().execute("SELECT count(*) FROM t").fetchall() == [(0,)]


def test_committed_rows_survive_a_reopen(open_rocks: Callable[[], alopex.Connection]) -> None:
    first = open_rocks()
    first.execute("CREATE TABLE t (x INTEGER, s TEXT)")
    first.execute("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
    first.commit()
    first.close()
    again = open_rocks()
    assert again.execute("SELECT x, s FROM t ORDER BY x").fetchall() == [(1, "a"), (2, "b")]


def test_execute_on_a_closed_connection_raises(con: alopex.Connection) -> None:
    con.close()
    with pytest.raises(alopex.InterfaceError):
        con.execute("SELECT 1")


def test_cursor_of_a_closed_connection_raises(con: alopex.Connection) -> None:
    cur = con.cursor()
    con.close()
    with pytest.raises(alopex.InterfaceError):
        cur.execute("SELECT 1")


def test_execute_on_a_closed_cursor_raises(con: alopex.Connection) -> None:
    cur = con.cursor()
    cur.close()
    with pytest.raises(alopex.InterfaceError):
        cur.execute("SELECT 1")


def test_close_twice_is_harmless(con: alopex.Connection) -> None:
    con.close()
    con.close()
    assert con.closed


# -- context manager -------------------------------------------------------------------------


def test_context_manager_commits_on_success(open_rocks: Callable[[], alopex.Connection]) -> None:
    with open_rocks() as db:
        db.execute("CREATE TABLE t (x INTEGER)")
        db.execute("INSERT INTO t VALUES (1)")
    assert open_rocks().execute("SELECT x FROM t").fetchall() == [(1,)]


def test_context_manager_rolls_back_on_exception(
    open_rocks: Callable[[], alopex.Connection],
) -> None:
    with open_rocks() as db:
        db.execute("CREATE TABLE t (x INTEGER)")
    with pytest.raises(RuntimeError), open_rocks() as db:
        db.execute("INSERT INTO t VALUES (1)")
        raise RuntimeError("boom")
    assert open_rocks().execute("SELECT count(*) FROM t").fetchall() == [(0,)]


def test_cursor_context_manager_closes_it(con: alopex.Connection) -> None:
    with con.cursor() as cur:
        assert cur.execute("SELECT 1").fetchall() == [(1,)]
    with pytest.raises(alopex.InterfaceError):
        cur.execute("SELECT 1")


# -- result shortcuts ------------------------------------------------------------------------


def test_arrow_returns_a_table_with_the_column_names(people: alopex.Connection) -> None:
    table = people.execute("SELECT id, name AS who FROM people ORDER BY id").arrow()
    assert isinstance(table, pa.Table)
    assert table.column_names == ["id", "who"]
    assert table.num_rows == 3
    assert table.column("id").to_pylist() == [1, 2, 3]
    assert table.column("who").to_pylist() == ["Ann", "Ben", "Cy"]


def test_arrow_of_an_empty_result(people: alopex.Connection) -> None:
    table = people.execute("SELECT id, name FROM people WHERE id < 0").arrow()
    assert table.column_names == ["id", "name"]
    assert table.num_rows == 0


def test_arrow_with_a_null(people: alopex.Connection) -> None:
    people.execute("INSERT INTO people (id, name) VALUES (4, 'Di')")
    table = people.execute("SELECT age FROM people ORDER BY id").arrow()
    assert table.column("age").to_pylist() == [31, 25, 40, None]


def test_df_returns_a_pandas_frame(people: alopex.Connection) -> None:
    pd = pytest.importorskip("pandas")
    frame = people.execute("SELECT id, name FROM people ORDER BY id").df()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["id", "name"]
    assert frame["name"].tolist() == ["Ann", "Ben", "Cy"]


def test_pl_returns_a_polars_frame(people: alopex.Connection) -> None:
    pl = pytest.importorskip("polars")
    frame = people.execute("SELECT id, name FROM people ORDER BY id").pl()
    assert isinstance(frame, pl.DataFrame)
    assert frame.columns == ["id", "name"]
    assert frame["id"].to_list() == [1, 2, 3]


def test_fetchnumpy_returns_arrays_by_name(people: alopex.Connection) -> None:
    arrays = people.execute("SELECT id, age FROM people ORDER BY id").fetchnumpy()
    assert list(arrays) == ["id", "age"]
    assert isinstance(arrays["id"], np.ndarray)
    np.testing.assert_array_equal(arrays["id"], [1, 2, 3])
    np.testing.assert_array_equal(arrays["age"], [31, 25, 40])


def test_typed_parameters_round_trip(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE tp (ts TIMESTAMP, d DATE, m DECIMAL(8,2), f BOOLEAN)")
    values = (dt.datetime(2024, 5, 6, 7, 8, 9), dt.date(2023, 1, 31), Decimal("12.30"), True)
    con.execute("INSERT INTO tp VALUES (?, ?, ?, ?)", values)
    assert con.execute("SELECT * FROM tp").fetchall() == [values]


def test_fast_path_results_convert_to_arrow(con: alopex.Connection) -> None:
    """A primary-key lookup skips Arrow to run; .arrow() still gets typed columns."""
    import pyarrow as pa

    con.execute("CREATE TABLE p(id INTEGER PRIMARY KEY, name TEXT, e VECTOR(2))")
    con.execute("INSERT INTO p VALUES (1, 'a', '[1, 2]')")
    table = con.execute("SELECT name, e FROM p WHERE id = ?", (1,)).arrow()
    assert table.schema.types == [pa.string(), pa.list_(pa.float32(), 2)]
    assert table.to_pylist() == [{"name": "a", "e": [1.0, 2.0]}]
    assert con.execute("SELECT name FROM p WHERE id = 2").arrow().num_rows == 0
