"""The LanceDB-style Python API (alopex.search): ``db.table(..).add(..)`` from every input
shape, and ``.search(vec).where(..).select(..).limit(k)`` matching exact NumPy ranking."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import alopex

DIM = 6


@pytest.fixture
def vectors() -> np.ndarray:
    return np.random.default_rng(11).normal(size=(50, DIM)).astype(np.float32)


@pytest.fixture
def docs(con: alopex.Connection, vectors: np.ndarray) -> alopex.Connection:
    con.execute(f"CREATE TABLE docs(id INTEGER PRIMARY KEY, lang TEXT, e VECTOR({DIM}))")
    con.table("docs").add(
        {
            "id": np.arange(50),
            "lang": ["en" if n % 3 == 0 else "de" for n in range(50)],
            "e": vectors,
        }
    )
    con.commit()
    return con


def nearest(vectors: np.ndarray, query: np.ndarray, keep: np.ndarray | None = None) -> list[int]:
    cosine = vectors @ query / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(query))
    order = [int(n) for n in np.argsort(-cosine, kind="stable")]
    return [n for n in order if keep is None or keep[n]]


@pytest.mark.parametrize("indexed", [False, True])
def test_search_matches_exact_ranking(
    docs: alopex.Connection, vectors: np.ndarray, indexed: bool
) -> None:
    if indexed:
        docs.execute("CREATE INDEX ix ON docs USING HNSW (e) WITH (provider='flat')")
        docs.commit()
    query = vectors[7] + 0.1
    found = docs.table("docs").search(query).limit(5).to_list()
    assert [r["id"] for r in found] == nearest(vectors, query)[:5]
    assert set(found[0]) == {"id", "lang", "e", "_distance"}
    assert found[0]["_distance"] == pytest.approx(
        1 - float(vectors[7] @ query) / np.linalg.norm(vectors[7]) / np.linalg.norm(query), abs=1e-5
    )
    english = np.array([n % 3 == 0 for n in range(50)])
    filtered = docs.table("docs").search(query).where("lang = 'en'").select(["id"]).limit(4)
    table = filtered.to_arrow()
    assert table.column_names == ["id", "_distance"]
    assert table.column("id").to_pylist() == nearest(vectors, query, english)[:4]
    assert list(filtered.to_pandas()["id"]) == table.column("id").to_pylist()


def test_batch_search_stacks_results_with_a_query_index(
    docs: alopex.Connection, vectors: np.ndarray
) -> None:
    queries = vectors[[1, 2, 3]]
    table = docs.table("docs").search(queries).select(["id"]).limit(2).to_arrow()
    assert table.column("query_index").to_pylist() == [0, 0, 1, 1, 2, 2]
    assert table.column("id").to_pylist()[::2] == [1, 2, 3]


@pytest.mark.parametrize("shape", ["arrow", "pandas", "polars", "dicts", "numpy"])
def test_add_reads_every_input_shape(
    con: alopex.Connection, vectors: np.ndarray, shape: str
) -> None:
    con.execute(f"CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, e VECTOR({DIM}))")
    ids, names = list(range(3)), ["a", None, "c"]
    rows = vectors[:3]
    data: object
    if shape == "arrow":
        data = pa.table(
            {
                "id": ids,
                "name": names,
                "e": pa.FixedSizeListArray.from_arrays(pa.array(rows.ravel()), DIM),
            }
        )
    elif shape == "pandas":
        data = pd.DataFrame({"id": ids, "name": names, "e": list(rows)})
    elif shape == "polars":
        data = pl.DataFrame({"id": ids, "name": names, "e": rows.tolist()})
    elif shape == "dicts":
        data = [
            {"id": i, "name": n, "e": r.tolist()} for i, n, r in zip(ids, names, rows, strict=True)
        ]
    else:
        data = {"id": np.array(ids), "name": names, "e": rows}
    assert con.table("t").add(data) == 3
    stored = con.execute("SELECT id, name, e FROM t ORDER BY id").fetchall()
    assert [(i, n) for i, n, _ in stored] == list(zip(ids, names, strict=True))
    np.testing.assert_allclose(np.array([e for _, _, e in stored]), rows, rtol=1e-6)


def test_api_errors_are_clear(docs: alopex.Connection) -> None:
    with pytest.raises(alopex.ProgrammingError, match="did you mean"):
        docs.table("doc")
    docs.execute(f"CREATE TABLE two(id INTEGER PRIMARY KEY, a VECTOR({DIM}), b VECTOR({DIM}))")
    with pytest.raises(alopex.ProgrammingError, match="vector_column"):
        docs.table("two").search(np.ones(DIM))
    assert docs.table("two").search(np.ones(DIM), vector_column="b").to_list() == []
    with pytest.raises(alopex.ProgrammingError, match="cannot read"):
        docs.table("docs").add(42)
    with pytest.raises(alopex.DataError, match="dimensions"):
        docs.table("docs").search(np.ones(DIM + 1)).to_list()
    with pytest.raises(alopex.ProgrammingError, match="at least 1"):
        docs.table("docs").search(np.ones(DIM)).limit(0)


def test_indexed_search_sees_own_writes_and_follows_commits(
    docs: alopex.Connection, vectors: np.ndarray
) -> None:
    """The planned index lookup must answer as SQL would: this transaction's own writes
    ranked exactly, committed changes caught up, rolled-back ones gone."""
    docs.execute("CREATE INDEX ix ON docs USING HNSW (e) WITH (provider='flat')")
    docs.commit()
    table, query = docs.table("docs"), vectors[7] + 0.1

    def found() -> list[int]:
        return [r["id"] for r in table.search(query).select(["id"]).limit(3).to_list()]

    assert found() == nearest(vectors, query)[:3]
    docs.execute("INSERT INTO docs VALUES (100, 'en', ?)", (query,))
    docs.execute("DELETE FROM docs WHERE id = 7")
    mine = found()  # uncommitted: 100 is nearest, 7 is gone
    assert mine[0] == 100 and 7 not in mine
    docs.rollback()
    assert found() == nearest(vectors, query)[:3]
    docs.execute("INSERT INTO docs VALUES (100, 'en', ?)", (query,))
    docs.commit()
    assert found()[0] == 100
    other = docs.table("docs").search(query).limit(1).to_list()[0]
    assert other["id"] == 100 and other["_distance"] == pytest.approx(0.0, abs=1e-6)


def test_search_follows_index_and_schema_changes(
    docs: alopex.Connection, vectors: np.ndarray
) -> None:
    """A table handle keeps its plans across searches; DDL must still change the answer."""
    table, query = docs.table("docs"), vectors[3] + 0.2
    before = table.search(query).select(["id"]).limit(4).to_list()  # planned with no index
    docs.execute("CREATE INDEX ix ON docs USING HNSW (e) WITH (provider='flat', metric='l2')")
    docs.commit()
    by_l2 = table.search(query).select(["id"]).limit(4).to_list()
    distances = np.linalg.norm(vectors - query, axis=1)  # the index's metric now
    assert [r["id"] for r in by_l2] == [int(n) for n in np.argsort(distances)[:4]]
    assert [r["_distance"] for r in by_l2] == pytest.approx(np.sort(distances)[:4], rel=1e-4)
    docs.execute("DROP INDEX ix")
    docs.commit()
    assert table.search(query).select(["id"]).limit(4).to_list() == before  # cosine again


def test_an_autocommit_search_leaves_no_transaction_open(
    docs: alopex.Connection, vectors: np.ndarray
) -> None:
    docs.execute("CREATE INDEX ix ON docs USING HNSW (e) WITH (provider='flat')")
    docs.commit()
    docs.autocommit = True
    assert docs.table("docs").search(vectors[2]).select(["id"]).limit(1).to_list()[0]["id"] == 2
    assert not docs.in_transaction


def test_a_statement_run_before_create_index_then_uses_the_index(
    docs: alopex.Connection, vectors: np.ndarray
) -> None:
    """Plans are per catalog version: a top-k statement first run without an index takes
    the index lookup (a fast-path result, rows without an Arrow relation) once it exists."""
    sql = "SELECT id FROM docs ORDER BY vector_similarity(e, ?) DESC LIMIT 3"
    session = docs._sql()
    assert session.execute(sql, (vectors[5],)).rows is None  # no index: the executor
    docs.execute("CREATE INDEX ix ON docs USING HNSW (e) WITH (provider='flat')")
    docs.commit()
    session.execute(sql, (vectors[5],))  # plans again at the new catalog version
    planned = session.execute(sql, (vectors[5],))
    assert planned.rows is not None and planned.rows[0] == (5,)


@pytest.mark.parametrize("provider", ["flat", "hnswlib", "faiss"])
def test_non_finite_queries_are_errors_and_huge_ones_are_not(
    docs: alopex.Connection, vectors: np.ndarray, provider: str
) -> None:
    docs.execute(f"CREATE INDEX ix ON docs USING HNSW (e) WITH (provider='{provider}')")
    docs.commit()
    sql = "SELECT id FROM docs ORDER BY vector_similarity(e, ?) DESC LIMIT 3"
    for bad in (np.nan, np.inf, -np.inf):
        query = vectors[4].copy()
        query[2] = bad
        with pytest.raises(alopex.DataError, match="finite"):
            docs.table("docs").search(query).to_list()
        with pytest.raises(alopex.DataError, match="finite"):
            docs.execute(sql, (query,))
    huge = vectors[4] * np.float32(1e30)  # finite, though its squared norm is not
    assert len(docs.table("docs").search(huge).limit(3).to_list()) == 3
