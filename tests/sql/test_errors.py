"""Errors a user sees: syntax errors with positions, unknown names with suggestions,
type errors naming the column -- always in the PEP 249 tree."""

from __future__ import annotations

import re

import pytest

import alopex


@pytest.fixture
def db(con: alopex.Connection) -> alopex.Connection:
    con.execute(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, email TEXT, "
        "balance INTEGER, joined DATE)"
    )
    con.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, total REAL)")
    con.execute("INSERT INTO customers VALUES (1, 'Ann', 'ann@x', 10, '2024-01-01')")
    return con


# -- syntax errors ---------------------------------------------------------------------------


def _position(message: str) -> tuple[int, int]:
    match = re.search(r"line (\d+)\D+?col(?:umn)? (\d+)", message, re.I)
    assert match, f"no line/column in {message!r}"
    return int(match.group(1)), int(match.group(2))


def test_syntax_error_is_a_programming_error_with_line_and_column(db: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError) as caught:
        db.execute("SELEC name FROM customers")
    line, _column = _position(str(caught.value))
    assert line == 1


def test_syntax_error_on_a_later_line(db: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError) as caught:
        db.execute("SELECT name\nFROM customers\nWHERE id = = 1")
    line, column = _position(str(caught.value))
    assert line == 3
    assert 7 <= column <= 12


def test_syntax_error_names_the_offending_token(db: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError) as caught:
        db.execute("SELECT name FROM customers WHERE id = 1 ORDER id")
    assert "ORDER" in str(caught.value) or "id" in str(caught.value)
    _position(str(caught.value))


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT (1 + 2 FROM customers",
        "SELECT 1 +",
        "SELECT * FROM",
        "INSERT INTO customers VALUES (1, 'x'",
        "CREATE TABLE (a INTEGER)",
        "SELECT 'unterminated",
        "UPDATE customers SET WHERE id = 1",
        "DELETE customers WHERE",
    ],
)
def test_malformed_statements_are_programming_errors(db: alopex.Connection, sql: str) -> None:
    with pytest.raises(alopex.ProgrammingError):
        db.execute(sql)


def test_unterminated_string_reports_its_position(db: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError) as caught:
        db.execute("SELECT 1,\n  'unterminated")
    line, _column = _position(str(caught.value))
    assert line == 2


def test_empty_statement(db: alopex.Connection) -> None:
    cur = db.execute("   ")
    assert cur.description is None


def test_non_string_sql_is_a_programming_error(db: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError):
        db.execute(42)  # type: ignore[arg-type]


# -- unknown names ---------------------------------------------------------------------------


def test_unknown_table_suggests_the_nearest(db: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError, match="did you mean") as caught:
        db.execute("SELECT * FROM customer")
    assert "customers" in str(caught.value)


def test_unknown_table_in_insert_suggests_the_nearest(db: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError, match="did you mean") as caught:
        db.execute("INSERT INTO ordres VALUES (1, 1, 1.0)")
    assert "orders" in str(caught.value)


def test_unknown_table_in_update_and_delete(db: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError, match="did you mean"):
        db.execute("UPDATE ordrs SET total = 1")
    with pytest.raises(alopex.ProgrammingError, match="did you mean"):
        db.execute("DELETE FROM custmers")


def test_unknown_table_in_a_join(db: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError, match="did you mean") as caught:
        db.execute("SELECT * FROM customers c JOIN order o ON o.customer_id = c.id")
    assert "orders" in str(caught.value)


def test_unknown_table_without_a_near_name(db: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError, match="zzzzqqq"):
        db.execute("SELECT * FROM zzzzqqq")


def test_unknown_column_suggests_the_nearest(db: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError, match="did you mean") as caught:
        db.execute("SELECT nmae FROM customers")
    assert "name" in str(caught.value)


def test_unknown_column_in_where(db: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError, match="did you mean") as caught:
        db.execute("SELECT id FROM customers WHERE balanse > 0")
    assert "balance" in str(caught.value)


def test_unknown_column_in_order_by(db: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError, match="did you mean") as caught:
        db.execute("SELECT id FROM customers ORDER BY emial")
    assert "email" in str(caught.value)


def test_unknown_column_in_insert_column_list(db: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError, match="did you mean") as caught:
        db.execute("INSERT INTO customers (id, nam) VALUES (2, 'Bo')")
    assert "name" in str(caught.value)


def test_unknown_column_in_update_set(db: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError, match="did you mean") as caught:
        db.execute("UPDATE customers SET emal = 'x'")
    assert "email" in str(caught.value)


def test_unknown_qualified_column(db: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError, match="did you mean") as caught:
        db.execute("SELECT c.nme FROM customers c")
    assert "name" in str(caught.value)


def test_unknown_column_in_a_join_condition(db: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError, match="did you mean") as caught:
        db.execute("SELECT * FROM customers c JOIN orders o ON o.customer = c.id")
    assert "customer_id" in str(caught.value)


def test_ambiguous_column(db: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError, match="ambiguous"):
        db.execute("SELECT id FROM customers JOIN orders ON orders.customer_id = customers.id")


def test_unknown_function(db: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError, match="no_such_fn"):
        db.execute("SELECT no_such_fn(1)")


def test_aggregate_in_where_is_refused(db: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError):
        db.execute("SELECT id FROM customers WHERE count(*) > 1")


def test_scalar_subquery_with_two_columns_is_refused(db: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError):
        db.execute("SELECT (SELECT id, name FROM customers)")


# -- type errors -----------------------------------------------------------------------------


def test_text_into_integer_is_a_data_error_naming_the_column(db: alopex.Connection) -> None:
    with pytest.raises(alopex.DataError, match="balance") as caught:
        db.execute("INSERT INTO customers (id, balance) VALUES (2, 'abc')")
    assert "abc" in str(caught.value)


def test_text_parameter_into_integer_is_a_data_error(db: alopex.Connection) -> None:
    with pytest.raises(alopex.DataError, match="balance"):
        db.execute("INSERT INTO customers (id, balance) VALUES (?, ?)", (2, "abc"))


def test_update_with_a_bad_type_is_a_data_error(db: alopex.Connection) -> None:
    with pytest.raises(alopex.DataError, match="balance"):
        db.execute("UPDATE customers SET balance = 'lots'")
    assert db.execute("SELECT balance FROM customers").fetchall() == [(10,)]


def test_bad_date_is_a_data_error(db: alopex.Connection) -> None:
    with pytest.raises(alopex.DataError, match="joined"):
        db.execute("INSERT INTO customers (id, joined) VALUES (2, 'not a date')")


def test_blob_into_integer_is_a_data_error(db: alopex.Connection) -> None:
    with pytest.raises(alopex.DataError, match="balance"):
        db.execute("INSERT INTO customers (id, balance) VALUES (2, x'0102')")


def test_fraction_into_integer_primary_key_is_a_data_error(db: alopex.Connection) -> None:
    with pytest.raises(alopex.DataError, match="id"):
        db.execute("INSERT INTO orders (id, total) VALUES (1.5, 2.0)")


def test_bad_cast_is_a_data_error(db: alopex.Connection) -> None:
    with pytest.raises(alopex.DataError):
        db.execute("SELECT CAST('not a date' AS DATE)")


def test_unsupported_parameter_type(db: alopex.Connection) -> None:
    with pytest.raises(alopex.Error):
        db.execute("SELECT ?", (object(),))


# -- errors never leak foreign exceptions ----------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM customers LIMIT 'x'",
        "SELECT * FROM customers LIMIT -1 OFFSET 'a'",
        "SELECT * FROM customers ORDER BY 99",
        "SELECT id FROM customers GROUP BY 7",
        "SELECT abs('x', 'y')",
        "SELECT substr()",
        "SELECT 1 UNION SELECT 1, 2",
        "SELECT * FROM customers WHERE id IN (SELECT id, name FROM customers)",
        "SELECT x'zz'",
        "SELECT 9223372036854775807 + 1",
        "SELECT -9223372036854775808 - 1",
        "SELECT 99999999999999999999999",
        "SELECT round(1.5, 'x')",
        "SELECT CAST('x' AS VECTOR(2))",
        "SELECT sum(name) FROM customers",
        "SELECT avg(joined) FROM customers",
        "SELECT joined + 1 FROM customers",
        "SELECT email LIKE 5 FROM customers",
        "INSERT INTO customers (id, id) VALUES (5, 6)",
        "CREATE TABLE bad (a UNKNOWNTYPE)",
        "CREATE TABLE bad (v VECTOR)",
        "CREATE TABLE bad (v VECTOR(0))",
        "CREATE TABLE bad (a INTEGER, a TEXT)",
        "CREATE INDEX i ON customers (id) USING hnsw",
        "DROP TABLE customers, nope",
        "ALTER TABLE customers DROP COLUMN id",
        "ALTER TABLE customers RENAME TO orders",
        "SELECT * FROM customers NATURAL JOIN orders NATURAL JOIN orders",
        "WITH x AS (SELECT 1) SELECT * FROM x, x",
        "SELECT lag(id) FROM customers",
        "VALUES (1, 2), (3)",
    ],
)
def test_odd_statements_raise_only_alopex_errors(db: alopex.Connection, sql: str) -> None:
    try:
        db.execute(sql).fetchall()
    except alopex.Error as err:
        assert not isinstance(err, alopex.InternalError), repr(err)
