"""EXPLAIN and EXPLAIN ANALYZE describe the plan of a query as text rows."""

from __future__ import annotations

import pytest

import alopex


def _setup(con: alopex.Connection) -> None:
    con.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, total REAL)")
    con.execute("INSERT INTO orders VALUES (1, 'ann', 10.0), (2, 'bob', 20.0)")


def test_explain_returns_text_rows_mentioning_the_table(con: alopex.Connection) -> None:
    _setup(con)
    cur = con.execute("EXPLAIN SELECT customer FROM orders WHERE total > 15")
    plan = cur.fetchall()
    assert cur.description is not None
    assert plan
    assert all(isinstance(value, str) for row in plan for value in row if value is not None)
    assert "orders" in "\n".join(str(v) for row in plan for v in row)


def test_explain_does_not_run_the_query(con: alopex.Connection) -> None:
    _setup(con)
    plan = con.execute("EXPLAIN SELECT customer FROM orders WHERE total > 15").fetchall()
    assert ("bob",) not in plan


def test_explain_of_a_join_mentions_both_tables(con: alopex.Connection) -> None:
    _setup(con)
    con.execute("CREATE TABLE customers (name TEXT PRIMARY KEY, city TEXT)")
    plan = con.execute(
        "EXPLAIN SELECT c.city, sum(o.total) FROM orders o JOIN customers c "
        "ON c.name = o.customer GROUP BY c.city"
    ).fetchall()
    text = "\n".join(str(v) for row in plan for v in row)
    assert "orders" in text
    assert "customers" in text


def test_explain_analyze_runs_and_mentions_the_table(con: alopex.Connection) -> None:
    _setup(con)
    cur = con.execute("EXPLAIN ANALYZE SELECT customer FROM orders WHERE total > 15")
    plan = cur.fetchall()
    assert plan
    assert all(isinstance(value, str) for row in plan for value in row if value is not None)
    assert "orders" in "\n".join(str(v) for row in plan for v in row)


def test_explain_analyze_leaves_the_data_alone(con: alopex.Connection) -> None:
    _setup(con)
    con.execute("EXPLAIN ANALYZE SELECT * FROM orders")
    assert con.execute("SELECT count(*) FROM orders").fetchall() == [(2,)]


def test_explain_of_an_unknown_table_raises(con: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError):
        con.execute("EXPLAIN SELECT * FROM nope")
