"""The relational SQL of the product overview runs verbatim."""

from __future__ import annotations

from collections.abc import Callable

import alopex

CREATE = (
    "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, "
    "created_at TIMESTAMP);"
)
INSERT = "INSERT INTO users (id, name, email) VALUES (1, 'Alice', 'alice@example.com');"
SELECT = "SELECT * FROM users WHERE id = 1;"


def test_overview_sql_runs_verbatim(con: alopex.Connection) -> None:
    con.execute(CREATE)
    con.execute(INSERT)
    assert con.execute(SELECT).fetchall() == [(1, "Alice", "alice@example.com", None)]


def test_overview_select_describes_every_column(con: alopex.Connection) -> None:
    con.execute(CREATE)
    con.execute(INSERT)
    cur = con.execute(SELECT)
    assert [d[0] for d in cur.description] == ["id", "name", "email", "created_at"]


def test_overview_sql_as_one_script(con: alopex.Connection) -> None:
    rows = con.execute("\n".join([CREATE, INSERT, SELECT])).fetchall()
    assert rows == [(1, "Alice", "alice@example.com", None)]


def test_overview_data_is_committed_and_persists(
    open_rocks: Callable[[], alopex.Connection],
) -> None:
    with open_rocks() as db:
        db.execute(CREATE)
        db.execute(INSERT)
    assert open_rocks().execute(SELECT).fetchall() == [(1, "Alice", "alice@example.com", None)]
