"""VECTOR columns and the vector functions (alopex.sql.vectors), checked against NumPy."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import alopex

DIM = 8


@pytest.fixture
def docs(con: alopex.Connection) -> np.ndarray:
    """Twenty random vectors (ids 1..20) plus a row with a NULL vector (id 21)."""
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(20, DIM)).astype(np.float32)
    con.execute(
        f"CREATE TABLE docs(id INTEGER PRIMARY KEY, e VECTOR({DIM}), f VECTOR({DIM}, L2), "
        f"g VECTOR({DIM}, INNER))"
    )
    rows: list[tuple[Any, ...]] = [(n + 1, v, v.tolist(), v) for n, v in enumerate(vectors)]
    con.executemany("INSERT INTO docs VALUES (?, ?, ?, ?)", [*rows, (21, None, None, None)])
    con.commit()
    return vectors


def column(con: alopex.Connection, sql: str, params: Any = ()) -> np.ndarray:
    values = [row[0] for row in con.execute(sql, params).fetchall()]
    return np.array([np.nan if v is None else v for v in values])


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a @ b) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b))


def test_functions_match_numpy(con: alopex.Connection, docs: np.ndarray) -> None:
    query = np.linspace(-1, 1, DIM).astype(np.float32)
    by_id = "FROM docs WHERE id <= 20 ORDER BY id"
    checks = {
        "cosine_similarity(e, ?)": cosine(docs, query),
        "vector_similarity(e, ?, 'cosine')": cosine(docs, query),
        "vector_distance(e, ?, 'cosine')": 1 - cosine(docs, query),
        "l2_distance(e, ?)": np.linalg.norm(docs - query, axis=1),
        "vector_distance(e, ?, 'l2')": np.linalg.norm(docs - query, axis=1),
        "vector_similarity(e, ?, 'l2')": -np.linalg.norm(docs - query, axis=1),
        "inner_product(e, ?)": docs @ query,
        "vector_similarity(e, ?, 'inner')": docs @ query,
        "vector_distance(e, ?, 'inner')": -(docs @ query),
    }
    for call, expected in checks.items():
        got = column(con, f"SELECT {call} {by_id}", (query,))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=call)
    norms = column(con, f"SELECT vector_norm(e) {by_id}")
    np.testing.assert_allclose(norms, np.linalg.norm(docs, axis=1), rtol=1e-6)
    assert set(column(con, f"SELECT vector_dims(e) {by_id}")) == {DIM}
    pairs = column(con, f"SELECT cosine_similarity(e, f) {by_id}")
    np.testing.assert_allclose(pairs, np.ones(20), rtol=1e-6)


def test_cosine_of_a_huge_query_is_its_direction(con: alopex.Connection, docs: np.ndarray) -> None:
    """Norms are summed in float32 unless that overflows (coordinates past ~1e19)."""
    query = np.linspace(-1, 1, DIM).astype(np.float32)
    sql = "SELECT cosine_similarity(e, ?) FROM docs WHERE id <= 20 ORDER BY id"
    huge = column(con, sql, (query * np.float32(1e30),))
    np.testing.assert_allclose(huge, cosine(docs, query), rtol=1e-5, atol=1e-6)


def test_two_argument_similarity_uses_the_declared_metric(
    con: alopex.Connection, docs: np.ndarray
) -> None:
    query = docs[3] + 0.5
    by_id = "FROM docs WHERE id <= 20 ORDER BY id"
    default = column(con, f"SELECT vector_similarity(e, ?) {by_id}", (query,))
    np.testing.assert_allclose(default, cosine(docs, query), rtol=1e-5)
    l2 = column(con, f"SELECT vector_similarity(f, ?) {by_id}", (query,))
    np.testing.assert_allclose(l2, -np.linalg.norm(docs - query, axis=1), rtol=1e-5)
    inner = column(con, f"SELECT vector_similarity(?, g) {by_id}", (query,))
    np.testing.assert_allclose(inner, docs @ query, rtol=1e-5)


@pytest.mark.parametrize(
    "literal",
    [
        "'[1, 0, 0, 0, 0, 0, 0, 0]'",
        "[1, 0, 0, 0, 0, 0, 0, 0]",
        "[1.0, 0.0, 0, 0, 0, 0, 0, 0.0]",
    ],
)
def test_literals_are_vectors(con: alopex.Connection, docs: np.ndarray, literal: str) -> None:
    got = column(con, f"SELECT inner_product(e, {literal}) FROM docs WHERE id <= 20 ORDER BY id")
    np.testing.assert_allclose(got, docs[:, 0], rtol=1e-6)


@pytest.mark.parametrize(
    "parameter",
    [
        [1.0] + [0.0] * (DIM - 1),
        np.eye(DIM, dtype=np.float32)[0],
        np.eye(DIM, dtype=np.float64)[0],
    ],
)
def test_parameters_are_vectors(con: alopex.Connection, docs: np.ndarray, parameter: Any) -> None:
    got = column(
        con, "SELECT inner_product(e, ?) FROM docs WHERE id <= 20 ORDER BY id", (parameter,)
    )
    np.testing.assert_allclose(got, docs[:, 0], rtol=1e-6)


def test_nulls_give_null(con: alopex.Connection, docs: np.ndarray) -> None:
    rows = con.execute(
        "SELECT vector_similarity(e, ?), vector_norm(e), vector_dims(e), l2_distance(e, NULL) "
        "FROM docs WHERE id = 21",
        (docs[0],),
    ).fetchall()
    assert rows == [(None, None, None, None)]


def test_top_k_by_similarity_matches_numpy(con: alopex.Connection, docs: np.ndarray) -> None:
    query = docs[5] * 2
    got = con.execute(
        "SELECT id, vector_similarity(e, ?) AS score FROM docs ORDER BY score DESC LIMIT 5",
        (query,),
    ).fetchall()
    expected = np.argsort(-cosine(docs, query))[:5] + 1
    assert [row[0] for row in got] == expected.tolist()
    assert got[0][0] == 6


def test_vectors_come_back_as_arrow_fixed_size_lists(
    con: alopex.Connection, docs: np.ndarray
) -> None:
    table = con.execute("SELECT e FROM docs WHERE id <= 20 ORDER BY id").arrow()
    assert table.column(0).type == pa.list_(pa.float32(), DIM)
    stored = np.asarray(table.column(0).combine_chunks().values).reshape(-1, DIM)
    np.testing.assert_array_equal(stored, docs)


@pytest.mark.parametrize(
    ("sql", "params", "message"),
    [
        ("SELECT vector_similarity(e, [1, 2]) FROM docs", (), "8 and 2 dimensions"),
        ("SELECT vector_similarity(e, e, 'manhattan') FROM docs", (), "unknown metric"),
        ("SELECT vector_norm('[1, x]')", (), "not a number"),
        ("SELECT vector_norm('1, 2')", (), "not a vector literal"),
        ("INSERT INTO docs(id, e) VALUES (30, ?)", ([1.0, 2.0],), r"VECTOR\(8\) but got 2"),
        ("INSERT INTO docs(id, e) VALUES (30, ?)", ([float("nan")] * DIM,), "NaN"),
        ("INSERT INTO docs(id, e) VALUES (30, ?)", ([float("inf")] * DIM,), "infinity"),
    ],
)
def test_bad_vectors_are_clear_errors(
    con: alopex.Connection, docs: np.ndarray, sql: str, params: Any, message: str
) -> None:
    with pytest.raises(alopex.AlopexError, match=message):
        con.execute(sql, params)


def test_vector_metric_must_be_known(con: alopex.Connection) -> None:
    with pytest.raises(alopex.DataError, match="COSINE, L2 or INNER"):
        con.execute("CREATE TABLE bad(e VECTOR(3, MANHATTAN))")
