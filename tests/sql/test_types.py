"""Column types stored and read back, NULL semantics and three-valued logic."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

import alopex


def one(con: alopex.Connection, sql: str, params: Any = ()) -> tuple[Any, ...]:
    rows = con.execute(sql, params).fetchall()
    assert len(rows) == 1, rows
    return rows[0]


# -- each type -------------------------------------------------------------------------------


@pytest.mark.parametrize("type_name", ["INTEGER", "INT"])
def test_integer_round_trip(con: alopex.Connection, type_name: str) -> None:
    con.execute(f"CREATE TABLE t (x {type_name})")
    con.execute("INSERT INTO t VALUES (42), (-7), (0)")
    rows = con.execute("SELECT x FROM t ORDER BY x").fetchall()
    assert rows == [(-7,), (0,), (42,)]
    assert all(type(r[0]) is int for r in rows)


def test_bigint_holds_64_bit_values(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (x BIGINT)")
    con.execute("INSERT INTO t VALUES (?), (?)", (2**62 + 1, -(2**63)))
    assert con.execute("SELECT x FROM t ORDER BY x").fetchall() == [(-(2**63),), (2**62 + 1,)]


@pytest.mark.parametrize("type_name", ["REAL", "FLOAT", "DOUBLE"])
def test_floating_round_trip(con: alopex.Connection, type_name: str) -> None:
    con.execute(f"CREATE TABLE t (x {type_name})")
    con.execute("INSERT INTO t VALUES (1.5), (-0.25), (3)")
    rows = con.execute("SELECT x FROM t ORDER BY x").fetchall()
    assert rows == [(-0.25,), (1.5,), (3.0,)]
    assert all(type(r[0]) is float for r in rows)


def test_double_keeps_full_precision(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (x DOUBLE)")
    con.execute("INSERT INTO t VALUES (?)", (0.1 + 0.2,))
    assert one(con, "SELECT x FROM t") == (0.1 + 0.2,)


@pytest.mark.parametrize("type_name", ["TEXT", "VARCHAR", "VARCHAR(20)"])
def test_text_round_trip(con: alopex.Connection, type_name: str) -> None:
    con.execute(f"CREATE TABLE t (x {type_name})")
    con.execute("INSERT INTO t VALUES ('hello'), ('ünïcødé ✓'), ('')")
    rows = con.execute("SELECT x FROM t ORDER BY x").fetchall()
    assert rows == [("",), ("hello",), ("ünïcødé ✓",)]


def test_text_with_quotes(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (x TEXT)")
    con.execute("INSERT INTO t VALUES ('it''s')")
    assert one(con, "SELECT x FROM t") == ("it's",)


def test_blob_round_trip(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (id INTEGER, b BLOB)")
    con.execute("INSERT INTO t VALUES (1, x'00ff10'), (2, ?)", (b"\x01\x02\x00",))
    rows = con.execute("SELECT b FROM t ORDER BY id").fetchall()
    assert rows == [(b"\x00\xff\x10",), (b"\x01\x02\x00",)]
    assert all(type(r[0]) is bytes for r in rows)


def test_boolean_round_trip(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (id INTEGER, b BOOLEAN)")
    con.execute("INSERT INTO t VALUES (1, TRUE), (2, FALSE), (3, NULL)")
    rows = con.execute("SELECT b FROM t ORDER BY id").fetchall()
    assert rows == [(True,), (False,), (None,)]
    assert type(rows[0][0]) is bool


def test_boolean_filters(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (id INTEGER, b BOOLEAN)")
    con.execute("INSERT INTO t VALUES (1, TRUE), (2, FALSE), (3, NULL)")
    assert con.execute("SELECT id FROM t WHERE b").fetchall() == [(1,)]
    assert con.execute("SELECT id FROM t WHERE NOT b").fetchall() == [(2,)]


def test_timestamp_reads_back_as_datetime(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (id INTEGER, ts TIMESTAMP)")
    con.execute("INSERT INTO t VALUES (1, '2024-01-02 03:04:05')")
    con.execute("INSERT INTO t VALUES (2, ?)", (dt.datetime(1999, 12, 31, 23, 59, 59, 123456),))
    rows = con.execute("SELECT ts FROM t ORDER BY id").fetchall()
    assert rows == [
        (dt.datetime(2024, 1, 2, 3, 4, 5),),
        (dt.datetime(1999, 12, 31, 23, 59, 59, 123456),),
    ]
    assert type(rows[0][0]) is dt.datetime


def test_timestamps_compare_and_order(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (id INTEGER, ts TIMESTAMP)")
    con.execute(
        "INSERT INTO t VALUES (1, '2024-03-01 00:00:00'), (2, '2023-03-01 00:00:00'), "
        "(3, '2025-03-01 00:00:00')"
    )
    rows = con.execute("SELECT id FROM t WHERE ts > '2024-01-01' ORDER BY ts").fetchall()
    assert rows == [(1,), (3,)]


def test_date_reads_back_as_date(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (id INTEGER, d DATE)")
    con.execute("INSERT INTO t VALUES (1, '2024-02-29'), (2, ?)", (dt.date(1970, 1, 1),))
    rows = con.execute("SELECT d FROM t ORDER BY id").fetchall()
    assert rows == [(dt.date(2024, 2, 29),), (dt.date(1970, 1, 1),)]
    assert type(rows[0][0]) is dt.date


def test_dates_before_1970(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (d DATE)")
    con.execute("INSERT INTO t VALUES ('1900-06-15')")
    assert one(con, "SELECT d FROM t") == (dt.date(1900, 6, 15),)


def test_decimal_reads_back_as_decimal(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (id INTEGER, m DECIMAL(10,2))")
    con.execute("INSERT INTO t VALUES (1, 3.14), (2, '0.10'), (3, ?)", (Decimal("12.5"),))
    rows = con.execute("SELECT m FROM t ORDER BY id").fetchall()
    assert rows == [(Decimal("3.14"),), (Decimal("0.10"),), (Decimal("12.50"),)]
    assert all(type(r[0]) is Decimal for r in rows)
    assert str(rows[2][0]) == "12.50"


def test_decimal_sum_is_exact(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (m DECIMAL(10,2))")
    con.execute("INSERT INTO t VALUES ('0.10'), ('0.20'), ('0.30')")
    assert one(con, "SELECT sum(m) FROM t") == (Decimal("0.60"),)


def test_vector_reads_back_as_a_list_of_floats(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (id INTEGER, v VECTOR(3))")
    con.execute("INSERT INTO t VALUES (1, ?)", ([1.0, 2.0, 3.0],))
    con.execute("INSERT INTO t VALUES (2, '[0.5, 0.25, -1]')")
    rows = con.execute("SELECT v FROM t ORDER BY id").fetchall()
    assert rows == [([1.0, 2.0, 3.0],), ([0.5, 0.25, -1.0],)]
    assert type(rows[0][0]) is list
    assert all(type(x) is float for x in rows[0][0])


def test_vector_null(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (id INTEGER, v VECTOR(2))")
    con.execute("INSERT INTO t VALUES (1, NULL), (2, '[1, 2]')")
    assert con.execute("SELECT v FROM t ORDER BY id").fetchall() == [(None,), ([1.0, 2.0],)]


def test_vector_of_the_wrong_dimension_is_a_data_error(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (v VECTOR(3))")
    with pytest.raises(alopex.DataError, match="v"):
        con.execute("INSERT INTO t VALUES (?)", ([1.0, 2.0],))


def test_null_in_every_type(con: alopex.Connection) -> None:
    con.execute(
        "CREATE TABLE t (a INTEGER, b BIGINT, c REAL, d DOUBLE, e TEXT, f BLOB, g BOOLEAN, "
        "h TIMESTAMP, i DATE, j DECIMAL(5,1), k VECTOR(2))"
    )
    con.execute(
        "INSERT INTO t VALUES (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
    )
    assert con.execute("SELECT * FROM t").fetchall() == [(None,) * 11]


def test_omitted_columns_are_null(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (a INTEGER, b TEXT, c TIMESTAMP)")
    con.execute("INSERT INTO t (a) VALUES (1)")
    assert one(con, "SELECT * FROM t") == (1, None, None)


def test_typeof_of_stored_values(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE t (a INTEGER, b REAL, c TEXT, d BLOB)")
    con.execute("INSERT INTO t VALUES (1, 1.5, 'x', x'01'), (NULL, NULL, NULL, NULL)")
    rows = con.execute("SELECT typeof(a), typeof(b), typeof(c), typeof(d) FROM t").fetchall()
    assert sorted(rows) == [("integer", "real", "text", "blob"), ("null", "null", "null", "null")]


# -- NULL and three-valued logic -------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("NULL = NULL", None),
        ("NULL <> NULL", None),
        ("NULL = 1", None),
        ("NULL < 1", None),
        ("NULL AND FALSE", False),
        ("FALSE AND NULL", False),
        ("NULL AND TRUE", None),
        ("NULL OR TRUE", True),
        ("TRUE OR NULL", True),
        ("NULL OR FALSE", None),
        ("NOT NULL", None),
        ("NULL IS NULL", True),
        ("NULL IS NOT NULL", False),
        ("1 IS NULL", False),
        ("NULL + 1", None),
        ("NULL * 0", None),
        ("'a' || NULL", None),
        ("NULL IN (1, 2)", None),
        ("1 IN (2, NULL)", None),
        ("1 IN (1, NULL)", True),
        ("1 NOT IN (2, NULL)", None),
        ("1 NOT IN (2, 3)", True),
        ("NULL BETWEEN 1 AND 2", None),
        ("NULL LIKE 'a'", None),
    ],
)
def test_three_valued_logic(con: alopex.Connection, expression: str, expected: object) -> None:
    (value,) = one(con, f"SELECT {expression}")
    if expected is None:
        assert value is None
    else:
        assert value == expected
        assert value is not None


@pytest.fixture
def nullable(con: alopex.Connection) -> alopex.Connection:
    con.execute("CREATE TABLE n (id INTEGER, x INTEGER)")
    con.execute("INSERT INTO n VALUES (1, 1), (2, NULL), (3, 3)")
    return con


def test_where_filters_out_null_comparisons(nullable: alopex.Connection) -> None:
    assert nullable.execute("SELECT id FROM n WHERE x <> 1").fetchall() == [(3,)]


def test_where_not_filters_out_null(nullable: alopex.Connection) -> None:
    assert nullable.execute("SELECT id FROM n WHERE NOT (x = 1)").fetchall() == [(3,)]


def test_where_is_null(nullable: alopex.Connection) -> None:
    assert nullable.execute("SELECT id FROM n WHERE x IS NULL").fetchall() == [(2,)]


def test_where_is_not_null(nullable: alopex.Connection) -> None:
    rows = nullable.execute("SELECT id FROM n WHERE x IS NOT NULL ORDER BY id").fetchall()
    assert rows == [(1,), (3,)]


def test_where_null_literal_selects_nothing(nullable: alopex.Connection) -> None:
    assert nullable.execute("SELECT id FROM n WHERE NULL").fetchall() == []


def test_not_in_with_a_null_in_the_subquery_selects_nothing(nullable: alopex.Connection) -> None:
    rows = nullable.execute("SELECT id FROM n WHERE id NOT IN (SELECT x FROM n)").fetchall()
    assert rows == []


def test_is_distinct_from_treats_nulls_as_equal(nullable: alopex.Connection) -> None:
    rows = nullable.execute("SELECT id FROM n WHERE x IS NOT 1 ORDER BY id").fetchall()
    assert rows == [(2,), (3,)]


def test_aggregates_skip_null(nullable: alopex.Connection) -> None:
    assert one(nullable, "SELECT count(*), count(x), sum(x), avg(x) FROM n") == (3, 2, 4, 2.0)
