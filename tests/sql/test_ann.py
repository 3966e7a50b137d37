"""ANN indexes in SQL (alopex.sql.ann): ORDER BY <vector function> LIMIT k through the index,
always the same rows as exact ranking when the provider is exact (``flat``), and never a
missed or stale row whatever was committed, rolled back or left uncommitted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import alopex
from alopex.sql import ann

DIM = 12
ROWS = 600
TOP = "SELECT id FROM docs ORDER BY vector_similarity(e, ?) DESC LIMIT 8"
TOP_WHERE = "SELECT id FROM docs WHERE lang = 'en' ORDER BY vector_distance(e, ?) LIMIT 5"


def fill(con: alopex.Connection, provider: str = "flat") -> np.ndarray:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(ROWS, DIM)).astype(np.float32)
    con.execute(f"CREATE TABLE docs(id INTEGER PRIMARY KEY, lang TEXT, e VECTOR({DIM}))")
    rows = [(n, "en" if n % 7 == 0 else "de", vectors[n]) for n in range(ROWS)]
    con.executemany("INSERT INTO docs VALUES (?, ?, ?)", rows)
    con.execute(f"CREATE INDEX ix ON docs USING HNSW (e) WITH (provider='{provider}', m=8)")
    con.commit()
    return vectors


def ids(con: alopex.Connection, sql: str, query: Any) -> list[int]:
    return [row[0] for row in con.execute(sql, (query,)).fetchall()]


def exact(con: alopex.Connection, sql: str, query: Any) -> list[int]:
    """The same query ranked without the index (LIMIT through a subquery keeps it exact)."""
    return ids(con, f"SELECT * FROM ({sql})", query)


def plan(con: alopex.Connection, sql: str, query: Any) -> str:
    return "\n".join(r[0] for r in con.execute("EXPLAIN ANALYZE " + sql, (query,)).fetchall())


def test_top_k_goes_through_the_index_and_matches_exact_ranking(con: alopex.Connection) -> None:
    vectors = fill(con)
    for n in (0, 17, 333):
        query = vectors[n] + 0.05
        assert ids(con, TOP, query) == exact(con, TOP, query)
        assert ids(con, TOP, query)[0] == n
    shown = plan(con, TOP, vectors[1])
    assert "NEAREST          ix (HNSW) top 8" in shown and "rows=8" in shown


def test_an_output_alias_and_offset_use_the_index(con: alopex.Connection) -> None:
    vectors = fill(con)
    sql = (
        "SELECT id, vector_similarity(e, ?) AS score FROM docs ORDER BY score DESC LIMIT 3 OFFSET 2"
    )
    rows = con.execute(sql, (vectors[5],)).fetchall()
    scores = sorted(
        (
            (
                float(vectors[n] @ vectors[5])
                / np.linalg.norm(vectors[n])
                / np.linalg.norm(vectors[5]),
                n,
            )
            for n in range(ROWS)
        ),
        reverse=True,
    )
    assert [r[0] for r in rows] == [n for _, n in scores[2:5]]
    assert "NEAREST" in plan(con, sql, vectors[5])


def test_filtered_search_returns_k_matching_rows(con: alopex.Connection) -> None:
    vectors = fill(con)
    found = ids(con, TOP_WHERE, vectors[1])
    assert len(found) == 5 and all(n % 7 == 0 for n in found)
    assert found == exact(con, TOP_WHERE, vectors[1])
    assert "rows kept: exact" in plan(con, TOP_WHERE, vectors[1])


@pytest.mark.parametrize("provider", ["flat", "hnswlib", "faiss"])
def test_filtered_search_hands_the_kept_rows_to_the_index(provider: str) -> None:
    config = {"sql": {"exact_filtered_rows": 0}}  # never rank the kept rows in SQL
    with alopex.connect(":memory:", config=config) as con:
        vectors = fill(con, provider)
        for n in (1, 2, 50):
            found = ids(con, TOP_WHERE, vectors[n])
            assert len(found) == 5 and all(row % 7 == 0 for row in found)
            assert found == exact(con, TOP_WHERE, vectors[n])
        shown = plan(con, TOP_WHERE, vectors[1])
        assert "WHERE rows as allow-set" in shown and "exact" not in shown


def test_the_index_follows_commits_and_own_writes(con: alopex.Connection) -> None:
    vectors = fill(con)
    query = vectors[10]
    assert ids(con, TOP, query)[0] == 10
    con.execute("DELETE FROM docs WHERE id = 10")
    con.execute("INSERT INTO docs VALUES (1000, 'en', ?)", (query * 2,))
    mine = ids(con, TOP, query)  # this transaction's own rows: ranked exactly
    assert mine[0] == 1000 and 10 not in mine
    assert "exact" in plan(con, TOP, query)
    con.commit()
    assert ids(con, TOP, query) == mine
    con.execute("UPDATE docs SET e = ? WHERE id = 1000", (-query,))
    con.commit()
    assert 1000 not in ids(con, TOP, query)
    con.execute("UPDATE docs SET e = NULL WHERE id = 20")
    con.commit()
    assert 20 not in ids(con, TOP, vectors[20])
    con.execute("DELETE FROM docs WHERE id = 30")
    con.rollback()
    assert ids(con, TOP, vectors[30])[0] == 30


def test_an_older_snapshot_ranks_exactly(
    open_rocks: Callable[[], alopex.Connection],
) -> None:
    writer = open_rocks()
    vectors = fill(writer)
    reader = open_rocks()
    reader.execute("BEGIN")
    before = ids(reader, TOP, vectors[50])  # the index now sits at this snapshot
    writer.execute("DELETE FROM docs WHERE id = 50")
    writer.commit()
    assert ids(writer, TOP, vectors[50])[0] != 50  # catches the index up
    assert ids(reader, TOP, vectors[50]) == before  # older snapshot: exact, still sees 50
    assert "exact" in plan(reader, TOP, vectors[50])
    reader.commit()


def test_the_index_is_rebuilt_after_reopening(
    open_rocks: Callable[[], alopex.Connection],
) -> None:
    con = open_rocks()
    vectors = fill(con)
    con.execute("DELETE FROM docs WHERE id < 100")
    con.commit()
    con.close()
    again = open_rocks()
    found = ids(again, TOP, vectors[150])
    assert found[0] == 150 and min(found) >= 100
    assert found == exact(again, TOP, vectors[150])


def test_dropping_the_index_drops_its_log(con: alopex.Connection) -> None:
    fill(con)
    con.execute("INSERT INTO docs VALUES (5000, 'en', ?)", (np.ones(DIM, np.float32),))
    con.commit()
    con.execute("SELECT 1")
    session = con._session
    assert session is not None and session.tx is not None
    index_id = session._load_catalog(session.tx).indexes["ix"].id
    start = ann.log_prefix(index_id)
    assert list(con.database.engine.scan(start, start + b"\xff"))
    con.execute("DROP INDEX ix")
    con.commit()
    assert list(con.database.engine.scan(start, start + b"\xff")) == []
    assert "NEAREST" not in plan(con, TOP, np.ones(DIM))


@pytest.mark.parametrize(
    ("sql", "error", "message"),
    [
        ("CREATE INDEX bad ON docs USING HNSW (lang)", alopex.ProgrammingError, "not a VECTOR"),
        ("CREATE INDEX bad ON docs USING HNSW (e, lang)", alopex.ProgrammingError, "one VECTOR"),
        (
            "CREATE INDEX bad ON docs USING HNSW (e) WITH (size=3)",
            alopex.ProgrammingError,
            "unknown HNSW option",
        ),
        (
            "CREATE INDEX bad ON docs USING HNSW (e) WITH (m='x')",
            alopex.ProgrammingError,
            "must be int",
        ),
        (
            "CREATE INDEX bad ON docs USING HNSW (e) WITH (metric='hamming')",
            alopex.ProgrammingError,
            "unknown metric",
        ),
        (
            "CREATE INDEX bad ON docs USING HNSW (e) WITH (provider='annoy')",
            alopex.AlopexError,
            "annoy",
        ),
        (
            "CREATE INDEX bad ON docs USING HNSW (e) WITH (provider='faiss', quantizer='sq4')",
            alopex.AlopexError,
            "quantizer must be one of 'none', 'fp16'",
        ),
        ("CREATE INDEX bad ON docs USING GIN (e)", alopex.NotSupportedError, "HNSW or IVF"),
        (
            "CREATE INDEX bad ON named USING HNSW (e)",
            alopex.NotSupportedError,
            "INTEGER PRIMARY KEY",
        ),
    ],
)
def test_bad_vector_indexes_are_clear_errors(
    con: alopex.Connection, sql: str, error: type[Exception], message: str
) -> None:
    fill(con)
    con.execute(f"CREATE TABLE named(name TEXT PRIMARY KEY, e VECTOR({DIM}))")
    with pytest.raises(error, match=message):
        con.execute(sql)


def test_a_saved_index_is_loaded_and_caught_up_after_reopening(
    open_rocks: Callable[[], alopex.Connection], rocks_path: Any
) -> None:
    con = open_rocks()
    vectors = fill(con)
    assert ids(con, TOP, vectors[3])[0] == 3  # builds the index
    con.close()  # saves it
    saved = list((rocks_path / "indexes").iterdir())
    assert [p.name.split("-")[0] for p in saved] and all(p.is_dir() for p in saved)
    again = open_rocks()
    again.execute("DELETE FROM docs WHERE id = 3")
    again.commit()
    found = ids(again, TOP, vectors[3])
    assert 3 not in found and found == exact(again, TOP, vectors[3])
    again.close()
    check = open_rocks()  # the change log keeps only what the newest snapshot lacks
    (saved,) = (rocks_path / "indexes").iterdir()
    log = [key for key, _ in check.scan(prefix=b"v") if key[5:6] == b"l"]
    assert log == [] and int(saved.name.split("-")[1]) == 2
    check.close()
    for folder in (rocks_path / "indexes").iterdir():  # damage the snapshot: rebuild, not wrong
        for file in folder.iterdir():
            file.write_bytes(b"garbage")
    third = open_rocks()
    assert ids(third, TOP, vectors[4]) == exact(third, TOP, vectors[4])
    third.execute("DROP INDEX ix")
    third.commit()
    assert list((rocks_path / "indexes").iterdir()) == []


def test_hnswlib_answers_and_pragma_ef_search_tunes_it(con: alopex.Connection) -> None:
    vectors = fill(con, provider="hnswlib")
    queries = vectors[:40] + 0.3

    def recall() -> float:
        hits = sum(len(set(ids(con, TOP, q)) & set(exact(con, TOP, q))) for q in queries)
        return hits / (8 * len(queries))

    con.execute("PRAGMA ef_search = 1")
    low = recall()
    con.execute("PRAGMA ef_search = 400")
    high = recall()
    assert high >= 0.99 and high >= low
    assert ids(con, TOP_WHERE, vectors[1]) == exact(con, TOP_WHERE, vectors[1])


@pytest.mark.parametrize(
    "options", ["provider='hnswlib'", "provider='faiss', m=16"], ids=["hnswlib", "faiss"]
)
def test_a_hundred_rounds_of_10k_deletes_and_reinserts_stay_within_2x(options: str) -> None:
    """The issue's check, as stated: 100 rounds of deleting and re-inserting the same
    10,000 rows leave the index no more than twice its fresh size, answering right."""
    rows, dim = 10_000, 8
    rng = np.random.default_rng(5)
    con = alopex.connect(":memory:")
    con.execute(f"CREATE TABLE r(id INTEGER PRIMARY KEY, e VECTOR({dim}, L2))")
    con.execute(f"CREATE INDEX rx ON r USING HNSW (e) WITH ({options}, ef_construction=32)")
    query = "SELECT id FROM r ORDER BY vector_distance(e, ?) LIMIT 1"
    session = con._session
    assert session is not None
    sizes, hits = [], 0
    for _ in range(101):  # the fresh fill, then 100 rounds
        data = rng.normal(size=(rows, dim)).astype(np.float32)
        con.execute("DELETE FROM r")
        con.commit()
        assert ids(con, query, data[0]) == []  # the index drops every row...
        con.table("r").add({"id": np.arange(rows), "e": data})
        con.commit()
        probes = rng.choice(rows, 20, replace=False).tolist()
        found = [ids(con, query, data[probe]) for probe in probes]  # ...and takes them back
        hits += sum(got == [probe] for got, probe in zip(found, probes, strict=True))
        live = next(iter(session.state.ann.live.values()))
        stats = live.index.stats()  # type: ignore[attr-defined]
        assert len(live.index) == rows
        # graph nodes (faiss: dead ones included), or slots and their capacity (hnswlib)
        sizes.append([stats[key] for key in ("nodes", "slots", "capacity") if key in stats])
    fresh, peak = np.array(sizes[0]), np.array(sizes).max(axis=0)
    assert (peak <= 2 * fresh).all(), (fresh, peak)
    assert hits >= 0.98 * 20 * len(sizes)  # a row finds itself (approximately: ANN)
    con.close()


def test_after_a_crash_the_index_matches_the_committed_rows(tmp_path: Any) -> None:
    """A snapshot saved at a clean close, then commits and a SIGKILL: the next open loads
    the old snapshot and replays the change log, so searches see exactly what committed."""
    import os
    import signal
    import subprocess
    import sys

    path = tmp_path / "db"
    config = {"storage": {"engine": "rocks"}}
    with alopex.connect(path, config=config) as con:
        vectors = fill(con)  # flat: exact, so any difference is a consistency bug
        assert ids(con, TOP, vectors[7])[0] == 7  # built, saved at close
    script = f"""
import os, signal, numpy as np, alopex
con = alopex.connect({str(path)!r}, config={config!r})
con.execute("DELETE FROM docs WHERE id = 7")
con.execute("INSERT INTO docs VALUES (7000, 'en', ?)", (np.full({DIM}, 3, np.float32),))
con.commit()
con.execute("DELETE FROM docs WHERE id = 8")  # never committed
os.kill(os.getpid(), signal.SIGKILL)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    with alopex.connect(path, config=config) as con:
        assert 7 not in ids(con, TOP, vectors[7])
        assert ids(con, TOP, np.full(DIM, 3, np.float32))[0] == 7000
        assert ids(con, TOP, vectors[8])[0] == 8
        for n in (1, 2, 3):
            assert ids(con, TOP, vectors[n]) == exact(con, TOP, vectors[n])
    assert os.path.isdir(path / "indexes")


@pytest.mark.parametrize(
    "using",
    [
        "IVF (e) WITH (nlist=8)",
        "HNSW (e) WITH (provider='faiss', m=16)",
        "HNSW (e) WITH (provider='faiss', quantizer='fp16')",
    ],
)
def test_faiss_serves_ivf_and_hnsw(con: alopex.Connection, using: str) -> None:
    vectors = fill(con)
    con.execute("DROP INDEX ix")
    con.execute(f"CREATE INDEX fx ON docs USING {using}")
    con.commit()
    con.execute("PRAGMA nprobe = 8")
    con.execute("PRAGMA ef_search = 200")
    for n in (3, 30, 300):
        assert ids(con, TOP, vectors[n]) == exact(con, TOP, vectors[n])
    assert "NEAREST          fx" in plan(con, TOP, vectors[1])


def test_a_search_that_overlaps_a_catch_up_answers_at_its_own_snapshot(tmp_path: Any) -> None:
    """Searches take no lock: one that another connection's catch-up overtakes while the
    index walks (made to happen here at that moment) must not return the newer rows."""
    path = tmp_path / "db"
    with alopex.connect(path) as con:
        fill(con)
    query = np.ones(DIM, np.float32)
    with alopex.connect(path) as reader, alopex.connect(path) as newer:
        reader.autocommit = False
        before = ids(reader, TOP, query)  # the reader's snapshot, and the index at it
        newer.execute("INSERT INTO docs VALUES (?, 'en', ?)", (ROWS, query))  # the nearest
        newer.commit()
        live = next(iter(reader._session.state.ann.live.values()))
        search = live.index.search

        def overtaken(*args: Any, **kwargs: Any) -> Any:
            del live.index.search  # once
            assert ids(newer, TOP, query)[0] == ROWS  # catches the index up to the insert
            return search(*args, **kwargs)

        live.index.search = overtaken  # type: ignore[method-assign]
        assert ids(reader, TOP, query) == before == exact(reader, TOP, query)
        assert "search" not in vars(live.index)  # the overtaking search did run
        reader.commit()
        assert ids(reader, TOP, query)[0] == ROWS


def test_a_catch_up_that_fails_part_way_is_never_searched(tmp_path: Any) -> None:
    """A catch-up that removed rows and then failed to add others leaves the index at no
    snapshot: a reader at the snapshot before it must still find the removed row (the
    index is rebuilt from the rows), and the close must not save that index."""
    path = tmp_path / "db"
    with alopex.connect(path) as con:
        vectors = fill(con)
    query = vectors[5]
    with alopex.connect(path) as reader, alopex.connect(path) as writer:
        reader.autocommit = False
        before = ids(reader, TOP, query)  # the reader's snapshot, and the index at it
        assert before[0] == 5
        writer.execute("DELETE FROM docs WHERE id = 5")
        writer.execute("UPDATE docs SET e = ? WHERE id = 6", (query,))
        writer.commit()
        live = next(iter(writer._session.state.ann.live.values()))

        def fail(*args: Any) -> None:
            del live.index.add  # once
            raise MemoryError("no room for the graph")

        live.index.add = fail  # type: ignore[method-assign]
        with pytest.raises(alopex.AlopexError):
            ids(writer, TOP, query)  # removes 5, then fails to add 6's new vector
        assert "add" not in vars(live.index)  # the failing add did run
        assert ids(reader, TOP, query) == before == exact(reader, TOP, query)
        reader.commit()
        assert ids(writer, TOP, query) == exact(writer, TOP, query)
        assert ids(writer, TOP, query)[0] == 6
    with alopex.connect(path) as con:
        assert ids(con, TOP, query) == exact(con, TOP, query)


def test_concurrent_searches_answer_at_their_own_snapshot(tmp_path: Any) -> None:
    """Readers share one in-memory index that other readers catch up to newer snapshots
    while a writer inserts rows right next to the query: every answer through the index
    must still be the exact ranking of the reader's own snapshot."""
    import threading

    path = tmp_path / "db"
    with alopex.connect(path) as con:
        fill(con)
    query = np.ones(DIM, np.float32)
    stop = threading.Event()
    mismatches: list[tuple[list[int], list[int]]] = []
    errors: list[BaseException] = []

    def write() -> None:
        rng = np.random.default_rng(7)
        with alopex.connect(path) as con:
            for n in range(ROWS, ROWS + 150):
                near = query + rng.normal(scale=0.05, size=DIM).astype(np.float32)
                con.execute("INSERT INTO docs VALUES (?, 'en', ?)", (n, near))
                con.commit()
                con.execute("DELETE FROM docs WHERE id = ?", (n - 3,))
                con.commit()
        stop.set()

    def read() -> None:
        try:
            with alopex.connect(path) as con:
                con.autocommit = False
                while not stop.is_set():
                    through_index = ids(con, TOP, query)
                    expected = exact(con, TOP, query)
                    if through_index != expected:
                        mismatches.append((through_index, expected))
                    con.commit()
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=write), *(threading.Thread(target=read) for _ in "ab")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert not mismatches, mismatches[:3]
