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


VECTOR_SQL = """-- Create table with vector column
CREATE TABLE documents (
    id INTEGER PRIMARY KEY,
    content TEXT,
    embedding VECTOR(1536)
);

-- Create HNSW index for fast similarity search
CREATE INDEX idx_embedding ON documents USING HNSW (embedding);
"""
VECTOR_QUERY = """-- Hybrid search with vector similarity
SELECT id, content, vector_similarity(embedding, ?) AS score
FROM documents
ORDER BY score DESC
LIMIT 10;"""


def test_overview_vector_sql_runs_verbatim(con: alopex.Connection) -> None:
    """The overview's vector example, with hnswlib behind USING HNSW, and the query
    vector as a NumPy array or a list."""
    import numpy as np

    con.execute(VECTOR_SQL)
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(300, 1536)).astype(np.float32)
    con.executemany(
        "INSERT INTO documents VALUES (?, ?, ?)",
        [(n, f"doc {n}", v) for n, v in enumerate(vectors)],
    )
    con.commit()
    query = vectors[42] + 0.01
    for parameter in (query, query.tolist()):
        rows = con.execute(VECTOR_QUERY, (parameter,)).fetchall()
        assert [r[0] for r in rows][:1] == [42] and len(rows) == 10
        assert rows[0][1] == "doc 42" and rows[0][2] > 0.99
    plan = "\n".join(r[0] for r in con.execute("EXPLAIN " + VECTOR_QUERY, (query,)).fetchall())
    assert "NEAREST          idx_embedding (HNSW) top 10" in plan
    con.execute("PRAGMA ef_search = 200")
    assert con.execute(VECTOR_QUERY, (query,)).fetchall()[0][0] == 42
