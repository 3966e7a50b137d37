"""SQL benchmark: Alopex against sqlite3, DuckDB and the Rust Alopex, on the same data in one run.

Four workloads, the same schema and the same rows for every engine, so the ratios printed at
the end are comparable even on a noisy machine:

(a) ``executemany`` INSERT of ``--rows-insert`` rows into ``items`` in one transaction (rows/s);
(b) ``--points`` point selects by primary key with random ids (queries/s);
(c) full scan + filter + GROUP BY over ``--events`` rows of ``events`` (seconds per query);
(d) ``events`` JOIN ``users`` (``--users`` rows) + GROUP BY (seconds per query).

(c) and (d) run three times: the first run (after reopening the database) is reported apart
from the best one, because a first query pays for empty caches that a dashboard refreshing
the same query does not. Loading ``events``/``users`` uses each engine's fastest bulk path
and is timed too, for information only.

Every engine's answers are checked against numpy on the same arrays (a fast wrong answer is
not a result); a mismatch prints a WARNING but keeps the figures.

A guard keeps the run finite when an engine is slow: a workload stops starting new work
(chunks of rows, queries, repeated runs) once it has used ``--max-seconds`` and reports what
it measured so far with a ``*`` and a footnote (rows a load did not get to are then loaded
untimed, so later workloads still see all the data); an in-process workload still running
after three times that budget, untimed loading included, is interrupted (SIGALRM) and its
figures become ``-``, as do those of the workloads that need its data.

Usage: ``python bench/sql.py [--events N] [--sync full|normal|off] [--engines rocks,sqlite]``
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import math
import pstats
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from types import FrameType
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

import alopex

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rust_peer import RUST_VERSION, run_rust_driver
from targets import target_text, verdict

ROCKS = "Alopex(rocks)"
MEMORY = "Alopex(memory)"
SQLITE = "sqlite3"
DUCKDB = f"DuckDB {duckdb.__version__}"
RUST = f"Rust alopex {RUST_VERSION}"
ENGINES = {"rocks": ROCKS, "memory": MEMORY, "sqlite": SQLITE, "duckdb": DUCKDB, "rust": RUST}

# Figure keys, in table order, with their column headings. Rates: higher is better;
# seconds: lower is better.
COLUMNS = {
    "insert": "(a) insert rows/s",
    "point": "(b) point q/s",
    "load": "load s",
    "scan first": "(c) first s",
    "scan best": "(c) best s",
    "join first": "(d) first s",
    "join best": "(d) best s",
}
# The workload (error/footnote key) each figure belongs to.
WORKLOAD_OF = {key: key.split()[0] for key in COLUMNS}

CHUNK = 10_000  # rows per executemany call; the soft guard is checked between chunks
POINT_CHECK_EVERY = 100  # point queries between soft-guard checks
RUNS = 3  # runs of (c) and (d)
SAMPLE = 100  # point answers kept for verification
HARD_FACTOR = 3.0  # a single statement is interrupted after HARD_FACTOR * --max-seconds

INSERT_SQL = "INSERT INTO items VALUES (?, ?, ?, ?)"
POINT_SQL = "SELECT name, price FROM items WHERE id = ?"
EVENTS_SQL = "INSERT INTO events VALUES (?, ?, ?, ?)"
USERS_SQL = "INSERT INTO users VALUES (?, ?)"
SCAN_SQL = "SELECT kind, count(*), sum(amount) FROM events WHERE amount > 10 GROUP BY kind"
JOIN_SQL = (
    "SELECT u.country, sum(e.amount) FROM events e JOIN users u ON e.user_id = u.id "
    "GROUP BY u.country"
)


def schema(float_type: str) -> list[str]:
    """The DDL every engine runs. ``float_type`` is whatever spells an 8-byte float there:
    ``REAL`` is 8 bytes in SQLite and Alopex but 4 bytes in DuckDB and the Rust package,
    whose rows would then no longer be the same data (and sums would not match)."""
    return [
        f"CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, category INTEGER, "
        f"price {float_type})",
        f"CREATE TABLE events(id INTEGER PRIMARY KEY, user_id INTEGER, kind INTEGER, "
        f"amount {float_type})",
        "CREATE TABLE users(id INTEGER PRIMARY KEY, country INTEGER)",
    ]


@dataclass(frozen=True)
class Spec:
    """The knobs of one run; written into the JSON output so a result can be reproduced."""

    rows_insert: int
    points: int
    events: int
    users: int
    seed: int
    sync: str
    max_seconds: float


# -- data -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Data:
    """Inputs shared by every engine, generated once with numpy and outside every timed
    section. Ids are 1..n in insertion order (the usual bulk-load shape); prices and amounts
    are rounded to cents so every engine stores exactly the same doubles."""

    item_id: np.ndarray
    item_category: np.ndarray
    item_price: np.ndarray
    point_ids: np.ndarray
    event_user: np.ndarray
    event_kind: np.ndarray
    event_amount: np.ndarray
    user_country: np.ndarray

    @classmethod
    def generate(cls, spec: Spec) -> Data:
        rng = np.random.default_rng(spec.seed)
        n, e, u = spec.rows_insert, spec.events, spec.users
        return cls(
            item_id=np.arange(1, n + 1, dtype=np.int64),
            item_category=rng.integers(0, 100, n),
            item_price=np.round(rng.uniform(1, 1000, n), 2),
            point_ids=rng.integers(1, n + 1, spec.points),
            event_user=rng.integers(1, u + 1, e),
            event_kind=rng.integers(0, 8, e),
            event_amount=np.round(rng.uniform(0, 100, e), 2),
            user_country=rng.integers(0, 50, u),
        )

    @cached_property
    def items(self) -> list[tuple[Any, ...]]:
        ids = self.item_id.tolist()
        names = [f"item{i:08d}" for i in ids]
        return list(
            zip(ids, names, self.item_category.tolist(), self.item_price.tolist(), strict=True)
        )

    @cached_property
    def events(self) -> list[tuple[Any, ...]]:
        ids = range(1, len(self.event_user) + 1)
        return list(
            zip(
                ids,
                self.event_user.tolist(),
                self.event_kind.tolist(),
                self.event_amount.tolist(),
                strict=True,
            )
        )

    @cached_property
    def users(self) -> list[tuple[Any, ...]]:
        return list(enumerate(self.user_country.tolist(), start=1))

    def arrow(self, table: str) -> pa.Table:
        """The rows of ``events`` or ``users`` as Arrow, for DuckDB's bulk path."""
        if table == "events":
            ids = np.arange(1, len(self.event_user) + 1, dtype=np.int64)
            return pa.table(
                {
                    "id": ids,
                    "user_id": self.event_user,
                    "kind": self.event_kind,
                    "amount": self.event_amount,
                }
            )
        ids = np.arange(1, len(self.user_country) + 1, dtype=np.int64)
        return pa.table({"id": ids, "country": self.user_country})

    # Expected answers, computed with numpy (float sums differ only in the last bits).

    def expected_point(self) -> list[list[Any]]:
        return [[[self.items[i - 1][1], self.items[i - 1][3]]] for i in self.sample_ids]

    @property
    def sample_ids(self) -> list[int]:
        return self.point_ids[:SAMPLE].tolist()  # type: ignore[no-any-return]

    def expected_scan(self) -> list[list[Any]]:
        keep = self.event_amount > 10
        kinds = self.event_kind[keep]
        counts = np.bincount(kinds, minlength=8)
        sums = np.bincount(kinds, weights=self.event_amount[keep], minlength=8)
        return [[k, int(counts[k]), float(sums[k])] for k in range(8) if counts[k]]

    def expected_join(self) -> list[list[Any]]:
        country = self.user_country[self.event_user - 1]
        counts = np.bincount(country, minlength=50)
        sums = np.bincount(country, weights=self.event_amount, minlength=50)
        return [[c, float(sums[c])] for c in range(50) if counts[c]]


# -- results and the guard ------------------------------------------------------------------


@dataclass
class Outcome:
    """What one engine produced: figures, footnotes for partial figures, errors per
    workload, and the answers kept for verification. Also the Rust driver's JSON shape."""

    figures: dict[str, float] = field(default_factory=dict)
    marks: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    answers: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class WorkloadTimeout(BaseException):
    """Raised by SIGALRM in a workload that ran past the hard limit. A BaseException, so an
    engine's ``except Exception`` (Alopex turns those into InternalError) cannot rewrap it."""


@contextmanager
def hard_limit(seconds: float) -> Iterator[None]:
    """Interrupt a runaway statement. Python-level engines (Alopex) stop at the next
    bytecode; C engines only when they return or check signals, but those are fast."""

    def fire(signum: int, frame: FrameType | None) -> None:
        raise WorkloadTimeout(f"interrupted after the hard limit of {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _chunks(rows: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _error(err: BaseException) -> str:
    """One line per error, so footnotes stay readable."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300]


# -- in-process engines ---------------------------------------------------------------------


class Engine:
    """One in-process engine: only *how* to run statements. ``measure`` does the timing
    for all of them, so every engine pays the same Python loop overhead."""

    float_type = "REAL"
    can_reopen = True

    def open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Execute with parameters and fetch all rows: what a DB-API user writes."""
        raise NotImplementedError

    def begin(self) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def insert_many(self, sql: str, rows: Sequence[Any]) -> None:
        """``executemany`` inside the current transaction."""
        raise NotImplementedError

    def ddl(self, statements: list[str]) -> None:
        self.begin()
        for statement in statements:
            self.query(statement)
        self.commit()

    def bulk_load(self, table: str, sql: str, data: Data, guard: Guard) -> None:
        """Fastest path for the (c)/(d) data: ``executemany`` in one transaction."""
        rows: list[tuple[Any, ...]] = getattr(data, table)
        guard.load_rows(self, sql, rows, f"{table} load")


class AlopexEngine(Engine):
    """Alopex through its public DB-API surface, autocommit off (the PEP 249 default), an
    explicit commit after each bulk load: what a user's code would pay."""

    def __init__(self, path: Path | None, sync: str) -> None:
        self.path = path
        self.sync = sync
        self.can_reopen = path is not None
        self.con: alopex.Connection | None = None
        self.cur: alopex.Cursor | None = None

    def open(self) -> None:
        if self.path is None:
            self.con = alopex.connect(":memory:")
        else:
            config = {"storage": {"engine": "rocks", "sync": self.sync}}
            self.con = alopex.connect(self.path, config=config)
        self.cur = self.con.cursor()

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
        self.con = self.cur = None

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        assert self.cur is not None
        return self.cur.execute(sql, params).fetchall()

    def begin(self) -> None:
        """Nothing to do: with autocommit off the first statement opens the transaction."""

    def commit(self) -> None:
        assert self.con is not None
        self.con.commit()

    def insert_many(self, sql: str, rows: Sequence[Any]) -> None:
        assert self.cur is not None
        self.cur.executemany(sql, rows)


class SqliteEngine(Engine):
    """SQLite, the usual embedded baseline: WAL, ``synchronous`` per ``--sync``, default page
    cache. ``isolation_level=None`` so BEGIN/COMMIT are exactly ours."""

    def __init__(self, path: Path, sync: str) -> None:
        self.path = path
        self.synchronous = {"full": "FULL", "normal": "NORMAL", "off": "OFF"}[sync]
        self.con: sqlite3.Connection | None = None
        self.cur: sqlite3.Cursor | None = None

    def open(self) -> None:
        self.con = sqlite3.connect(self.path, isolation_level=None)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute(f"PRAGMA synchronous={self.synchronous}")
        self.cur = self.con.cursor()

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
        self.con = self.cur = None

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        assert self.cur is not None
        return self.cur.execute(sql, params).fetchall()

    def begin(self) -> None:
        self.query("BEGIN")

    def commit(self) -> None:
        self.query("COMMIT")

    def insert_many(self, sql: str, rows: Sequence[Any]) -> None:
        assert self.cur is not None
        self.cur.executemany(sql, rows)


class DuckEngine(Engine):
    """DuckDB, the analytics baseline: a file database with default settings (it uses
    every core). Its ``executemany`` is slow, so (c)/(d) data goes in through Arrow."""

    float_type = "DOUBLE"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.con: duckdb.DuckDBPyConnection | None = None

    def open(self) -> None:
        self.con = duckdb.connect(str(self.path))

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
        self.con = None

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        assert self.con is not None
        return self.con.execute(sql, params).fetchall()

    def begin(self) -> None:
        assert self.con is not None
        self.con.begin()

    def commit(self) -> None:
        assert self.con is not None
        self.con.commit()

    def insert_many(self, sql: str, rows: Sequence[Any]) -> None:
        assert self.con is not None
        self.con.executemany(sql, rows)

    def bulk_load(self, table: str, sql: str, data: Data, guard: Guard) -> None:
        """One INSERT ... SELECT from a registered Arrow table: DuckDB's fast path."""
        assert self.con is not None
        self.con.register("bulk_source", data.arrow(table))
        try:
            self.begin()
            self.con.execute(f"INSERT INTO {table} SELECT * FROM bulk_source")
            self.commit()
        finally:
            self.con.unregister("bulk_source")


# -- timing ---------------------------------------------------------------------------------


Profiler = Callable[[str], AbstractContextManager[None]]


def _no_profile(workload: str) -> AbstractContextManager[None]:
    return nullcontext()


@dataclass
class Guard:
    """The soft ``--max-seconds`` budget of one workload, and the outcome it marks."""

    max_seconds: float
    outcome: Outcome
    profile: Profiler = _no_profile

    def expired(self, t0: float) -> bool:
        return time.perf_counter() - t0 > self.max_seconds

    def load_rows(self, engine: Engine, sql: str, rows: Sequence[Any], what: str) -> int:
        """``executemany`` of ``rows`` in ONE transaction, chunk by chunk so the guard can
        stop it; rows left over are then loaded untimed (a commit per chunk) so the next
        workloads still see the whole table. Returns the rows of the timed transaction."""
        done = 0
        engine.begin()
        t0 = time.perf_counter()
        for chunk in _chunks(rows):
            if self.expired(t0):
                break
            engine.insert_many(sql, chunk)
            done += len(chunk)
        engine.commit()
        if done < len(rows):
            for chunk in _chunks(rows[done:]):
                engine.begin()
                engine.insert_many(sql, chunk)
                engine.commit()
            self.outcome.notes.append(
                f"{what}: the guard stopped the timed transaction after {done:,} of "
                f"{len(rows):,} rows; the rest was loaded untimed"
            )
        return done


def _timed_runs(
    guard: Guard, key: str, run: Callable[[], list[Any]]
) -> tuple[float, float, list[Any]]:
    """Up to RUNS runs of one query: (first seconds, best seconds, first answer)."""
    times: list[float] = []
    answer: list[Any] = []
    t_start = time.perf_counter()
    with guard.profile(key):
        for i in range(RUNS):
            if i and guard.expired(t_start):
                guard.outcome.marks[f"{key} best"] = f"best of {i} run(s): --max-seconds hit"
                break
            gc.collect()
            t0 = time.perf_counter()
            rows = run()
            times.append(time.perf_counter() - t0)
            if i == 0:
                answer = [list(r) for r in rows]
    return times[0], min(times), answer


def measure(engine: Engine, data: Data, spec: Spec, profile: Profiler) -> Outcome:
    """Run (a), (b), load, (c), (d) in this order on a fresh database; each workload's
    failure is recorded and only the workloads that need its data are skipped."""
    out = Outcome()
    guard = Guard(spec.max_seconds, out, profile)
    hard = spec.max_seconds * HARD_FACTOR

    def attempt(workload: str, body: Callable[[], None], needs: str | None = None) -> bool:
        if needs is not None and needs in out.errors:
            out.errors[workload] = f"skipped: {needs} failed"
            return False
        try:
            with hard_limit(hard):
                body()
        except (Exception, WorkloadTimeout) as err:
            out.errors[workload] = _error(err)
            return False
        return True

    def insert() -> None:
        rows = data.items
        gc.collect()
        t0 = time.perf_counter()
        with profile("insert"):
            done = guard.load_rows(engine, INSERT_SQL, rows, "(a) insert")
        elapsed = time.perf_counter() - t0
        out.figures["insert"] = done / elapsed
        if done < len(rows):
            out.marks["insert"] = f"{done:,} of {len(rows):,} rows timed: --max-seconds hit"
        out.answers["insert"] = engine.query("SELECT count(*) FROM items")[0][0]

    def point() -> None:
        ids = data.point_ids.tolist()
        query = engine.query
        done = 0
        gc.collect()
        t0 = time.perf_counter()
        with profile("point"):
            for start in range(0, len(ids), POINT_CHECK_EVERY):
                if guard.expired(t0):
                    break
                for i in ids[start : start + POINT_CHECK_EVERY]:
                    query(POINT_SQL, (i,))
                done = min(start + POINT_CHECK_EVERY, len(ids))
        out.figures["point"] = done / (time.perf_counter() - t0)
        if done < len(ids):
            out.marks["point"] = f"{done:,} of {len(ids):,} queries: --max-seconds hit"
        out.answers["point"] = [[list(r) for r in query(POINT_SQL, (i,))] for i in data.sample_ids]
        engine.commit()  # end the read transaction (a no-op elsewhere)

    def load() -> None:
        gc.collect()
        t0 = time.perf_counter()
        engine.bulk_load("events", EVENTS_SQL, data, guard)
        engine.bulk_load("users", USERS_SQL, data, guard)
        out.figures["load"] = time.perf_counter() - t0
        if any("load:" in note for note in out.notes):
            out.marks["load"] = "guard hit: partly untimed (see notes)"
        if engine.can_reopen:  # so the first (c) run starts with the engine's caches empty
            engine.close()
            gc.collect()
            engine.open()

    def query_workload(key: str, sql: str) -> Callable[[], None]:
        def body() -> None:
            first, best, answer = _timed_runs(guard, key, lambda: engine.query(sql))
            out.figures[f"{key} first"] = first
            out.figures[f"{key} best"] = best
            out.answers[key] = answer
            engine.commit()

        return body

    engine.open()
    try:
        engine.ddl(schema(engine.float_type))
        attempt("insert", insert)
        attempt("point", point, needs="insert")
        attempt("load", load)
        attempt("scan", query_workload("scan", SCAN_SQL), needs="load")
        attempt("join", query_workload("join", JOIN_SQL), needs="load")
    finally:
        engine.close()
    return out


# -- the Rust package -----------------------------------------------------------------------

# Runs inside bench/.venv-rust only (see rust_peer.py). It mirrors ``measure`` step for step:
# same chunks, same soft guard, reopen before (c), RUNS runs of (c)/(d). Without bytes
# parameters nothing in this schema needs them. Choices, per the package's documented API:
# - (a): its two bulk paths, ``Transaction.execute_many`` and ``prepare`` + execute_many on
#   a transaction, are first raced on a throwaway database (min(rows, 10000) rows each,
#   untimed for the table); the faster one is used for (a) and the (c)/(d) load.
# - (b): ONE ``db.prepare`` statement, then bind(1, id) / execute() / reset() per query,
#   outside any explicit transaction (auto-commit reads, as the Python engines).
# - (c)/(d): ``db.execute_sql``; SELECT results come back as lists of dicts.
RUST_DRIVER = r"""
import gc
import json
import shutil
import sys
import time
import traceback

import alopex

a = json.loads(sys.stdin.read())
RW = alopex.TxnMode.READ_WRITE
CHUNK, CHECK, RUNS = a["chunk"], a["check_every"], a["runs"]
MAX = a["max_seconds"]
out = {"figures": {}, "marks": {}, "errors": {}, "answers": {}, "notes": []}


def expired(t0):
    return time.perf_counter() - t0 > MAX


def chunks(rows):
    for s in range(0, len(rows), CHUNK):
        yield rows[s:s + CHUNK]


def via_txn(txn, sql, rows):
    txn.execute_many(sql, rows)


def via_prepare(txn, sql, rows):
    txn.prepare(sql).execute_many(rows)


def race_bulk_paths():
    rows = a["items"][:10000]
    timing = {}
    for name, fn in (("Transaction.execute_many", via_txn),
                     ("Transaction.prepare(sql).execute_many", via_prepare)):
        path = a["path"] + "-probe"
        shutil.rmtree(path, ignore_errors=True)
        db = alopex.connect(path)
        db.execute_sql(a["ddl"][0])
        t0 = time.perf_counter()
        txn = db.begin(RW)
        fn(txn, a["insert_sql"], rows)
        txn.commit()
        timing[name] = time.perf_counter() - t0
        db.close()
        shutil.rmtree(path, ignore_errors=True)
    best = min(timing, key=timing.get)
    out["notes"].append(
        "bulk path: %s (probe on %d rows: %s)" % (best, len(rows), ", ".join(
            "%s %.0f rows/s" % (k, len(rows) / v) for k, v in timing.items())))
    return via_txn if best == "Transaction.execute_many" else via_prepare


def load_rows(db, sql, rows, what):
    done = 0
    txn = db.begin(RW)
    t0 = time.perf_counter()
    for chunk in chunks(rows):
        if expired(t0):
            break
        BULK(txn, sql, chunk)
        done += len(chunk)
    txn.commit()
    if done < len(rows):
        for chunk in chunks(rows[done:]):
            txn = db.begin(RW)
            BULK(txn, sql, chunk)
            txn.commit()
        out["notes"].append("%s: the guard stopped the timed transaction after %d of %d "
                            "rows; the rest was loaded untimed" % (what, done, len(rows)))
    return done


def attempt(workload, body, needs=None):
    if needs is not None and needs in out["errors"]:
        out["errors"][workload] = "skipped: %s failed" % needs
        return
    try:
        body()
    except Exception as err:
        lines = str(err).strip().splitlines() or [""]
        out["errors"][workload] = ("%s: %s" % (type(err).__name__, lines[0]))[:300]
        traceback.print_exc()


state = {}


def insert():
    rows = a["items"]
    gc.collect()
    t0 = time.perf_counter()
    done = load_rows(state["db"], a["insert_sql"], rows, "(a) insert")
    out["figures"]["insert"] = done / (time.perf_counter() - t0)
    if done < len(rows):
        out["marks"]["insert"] = "%d of %d rows timed: --max-seconds hit" % (done, len(rows))
    res = state["db"].execute_sql("SELECT count(*) AS n FROM items")
    out["answers"]["insert"] = list(res[0].values())[0]


def point():
    ids = a["point_ids"]
    st = state["db"].prepare(a["point_sql"])
    done = 0
    gc.collect()
    t0 = time.perf_counter()
    for s in range(0, len(ids), CHECK):
        if expired(t0):
            break
        for i in ids[s:s + CHECK]:
            st.bind(1, i)
            st.execute()
            st.reset()
        done = min(s + CHECK, len(ids))
    out["figures"]["point"] = done / (time.perf_counter() - t0)
    if done < len(ids):
        out["marks"]["point"] = "%d of %d queries: --max-seconds hit" % (done, len(ids))
    answers = []
    for i in a["sample_ids"]:
        st.bind(1, i)
        answers.append([list(r.values()) for r in st.execute()])
        st.reset()
    out["answers"]["point"] = answers


def load():
    gc.collect()
    t0 = time.perf_counter()
    load_rows(state["db"], a["events_sql"], a["events"], "events load")
    load_rows(state["db"], a["users_sql"], a["users"], "users load")
    out["figures"]["load"] = time.perf_counter() - t0
    if any("load:" in n for n in out["notes"]):
        out["marks"]["load"] = "guard hit: partly untimed (see notes)"
    state["db"].close()
    gc.collect()
    state["db"] = alopex.connect(a["path"])


def query_workload(key, sql):
    def body():
        times = []
        answer = []
        t_start = time.perf_counter()
        for i in range(RUNS):
            if i and expired(t_start):
                out["marks"][key + " best"] = "best of %d run(s): --max-seconds hit" % i
                break
            gc.collect()
            t0 = time.perf_counter()
            rows = state["db"].execute_sql(sql)
            times.append(time.perf_counter() - t0)
            if i == 0:
                answer = [list(r.values()) for r in rows]
        out["figures"][key + " first"] = times[0]
        out["figures"][key + " best"] = min(times)
        out["answers"][key] = answer
    return body


BULK = race_bulk_paths()
state["db"] = alopex.connect(a["path"])
for statement in a["ddl"]:
    state["db"].execute_sql(statement)
attempt("insert", insert)
attempt("point", point, needs="insert")
attempt("load", load)
attempt("scan", query_workload("scan", a["scan_sql"]), needs="load")
attempt("join", query_workload("join", a["join_sql"]), needs="load")
state["db"].close()
print(json.dumps(out))
"""


def run_rust(data: Data, spec: Spec, workdir: Path) -> Outcome:
    """The Rust package in its own venv; rows travel as JSON, so it gets the same data."""
    args = {
        "path": str(workdir / "rust-sql"),
        "ddl": schema("DOUBLE"),
        "chunk": CHUNK,
        "check_every": POINT_CHECK_EVERY,
        "runs": RUNS,
        "max_seconds": spec.max_seconds,
        "insert_sql": INSERT_SQL,
        "point_sql": POINT_SQL,
        "events_sql": EVENTS_SQL,
        "users_sql": USERS_SQL,
        "scan_sql": SCAN_SQL,
        "join_sql": JOIN_SQL,
        "items": data.items,
        "point_ids": data.point_ids.tolist(),
        "sample_ids": data.sample_ids,
        "events": data.events,
        "users": data.users,
    }
    # Its soft guards bound each workload; this only catches a hung native call.
    timeout = spec.max_seconds * HARD_FACTOR * len(ENGINES) + 600
    got = run_rust_driver(RUST_DRIVER, args, timeout=timeout)
    return Outcome(**got)


def run_engine(name: str, data: Data, spec: Spec, workdir: Path, profile: Profiler) -> Outcome:
    """Open ``name`` fresh under ``workdir`` and run its workloads."""
    path = workdir / next(key for key, full in ENGINES.items() if full == name)
    if name == ROCKS:
        return measure(AlopexEngine(path, spec.sync), data, spec, profile)
    if name == MEMORY:
        return measure(AlopexEngine(None, spec.sync), data, spec, profile)
    if name == SQLITE:
        return measure(SqliteEngine(path.with_suffix(".db"), spec.sync), data, spec, profile)
    if name == DUCKDB:
        return measure(DuckEngine(path.with_suffix(".duckdb")), data, spec, profile)
    if name == RUST:
        return run_rust(data, spec, workdir)
    raise ValueError(f"unknown engine {name!r}")


# -- verification ---------------------------------------------------------------------------


def _same(got: Any, want: Any) -> bool:
    """Equal, with floats compared relatively: summation order differs between engines."""
    if isinstance(want, float) or isinstance(got, float):
        return isinstance(got, (int, float)) and math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-6)
    if isinstance(want, list):
        return (
            isinstance(got, (list, tuple))
            and len(got) == len(want)
            and all(_same(g, w) for g, w in zip(got, want, strict=True))
        )
    return bool(got == want)


def verify(data: Data, spec: Spec, results: dict[str, Outcome]) -> tuple[int, list[str]]:
    """(answers checked, warnings) for every answer that differs from numpy's; GROUP BY
    output order is free, so rows are sorted by their group key first."""
    expected: dict[str, Any] = {
        "insert": spec.rows_insert,
        "point": data.expected_point(),
        "scan": data.expected_scan(),
        "join": data.expected_join(),
    }
    warnings = []
    checked = 0
    for name, outcome in results.items():
        for workload, want in expected.items():
            if workload not in outcome.answers:
                continue
            got = outcome.answers[workload]
            checked += 1
            if workload in ("scan", "join"):
                got = sorted(got, key=lambda row: row[0])
            if not _same(got, want):
                warnings.append(
                    f"{name} {workload}: answer differs from the expected one: "
                    f"got {str(got)[:200]}, expected {str(want)[:200]}"
                )
    return checked, warnings


# -- report ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ratio:
    """``num`` against ``den`` on one figure, oriented so that > 1 means ``num`` is better:
    rates are divided num/den, times den/num. ``target`` is a floor (``None``: info)."""

    figure: str
    num: str
    den: str
    target: float | None = None
    strict: bool = False  # the target must be exceeded, not merely reached

    @property
    def is_time(self) -> bool:
        return not COLUMNS[self.figure].endswith("/s")

    def label(self) -> str:
        if self.is_time:
            return f"{self.den} s / {self.num} s"
        return f"{self.num} / {self.den}"

    def value(self, results: dict[str, Outcome]) -> float | None:
        a = results.get(self.num, Outcome()).figures.get(self.figure)
        b = results.get(self.den, Outcome()).figures.get(self.figure)
        if a is None or b is None or not a or not b:
            return None
        return b / a if self.is_time else a / b

    def verdict(self, ratio: float) -> str:
        return verdict(ratio, self.target, self.strict)

    def target_text(self) -> str:
        return target_text(self.target, self.strict)


RATIOS = [
    Ratio("insert", ROCKS, RUST, 2.0),
    Ratio("insert", ROCKS, SQLITE),
    Ratio("point", ROCKS, SQLITE, 0.30),
    Ratio("point", ROCKS, RUST, 3.0),
    Ratio("scan best", ROCKS, SQLITE, 1.0, strict=True),
    Ratio("scan first", ROCKS, SQLITE, 1.0, strict=True),
    Ratio("join best", ROCKS, SQLITE, 1.0, strict=True),
    Ratio("join first", ROCKS, SQLITE, 1.0, strict=True),
    Ratio("point", ROCKS, DUCKDB),
    Ratio("scan best", ROCKS, DUCKDB),
    Ratio("join best", ROCKS, DUCKDB),
    Ratio("scan best", ROCKS, RUST),
    Ratio("join best", ROCKS, RUST),
    Ratio("load", ROCKS, SQLITE),
    Ratio("point", ROCKS, MEMORY),
    Ratio("scan best", ROCKS, MEMORY),
    Ratio("join best", ROCKS, MEMORY),
]


def notes(spec: Spec, engines: list[str]) -> list[str]:
    """Caveats that change how the numbers should be read; printed with every table."""
    out = [
        f"sync={spec.sync!r} for Alopex(rocks) and sqlite3 (WAL): full fsyncs every commit.",
        "(c)/(d) 'first' is the first run after closing and reopening the database (engine "
        "caches empty, OS page cache warm); Alopex(memory) cannot reopen, so its first run "
        "follows the load directly. 'best' is the best of the runs, first included.",
        "REAL is 8 bytes in SQLite and Alopex but 4 bytes in DuckDB and the Rust package, "
        "so those two declare the float columns DOUBLE: every engine stores the same doubles.",
        "DuckDB runs queries on every core (2 here); the others use one thread per query.",
        "(a) and loads go through executemany in chunks of "
        f"{CHUNK:,} rows inside ONE transaction (DuckDB loads (c)/(d) data through Arrow).",
        f"Data lives under {tempfile.gettempdir()} (set TMPDIR to bench another disk).",
    ]
    if RUST in engines:
        out.append(
            f"{RUST} fsyncs every commit (durable) whatever --sync says; its (b) uses one "
            "prepared statement (bind/execute/reset)."
        )
    return out


def _fmt(key: str, x: float | None) -> str:
    if x is None:
        return "-"
    if COLUMNS[key].endswith("/s"):
        return f"{x:,.0f}"
    return f"{x:.3f}" if x < 100 else f"{x:,.1f}"


def report(
    spec: Spec,
    results: dict[str, Outcome],
    failures: dict[str, str],
    checked: int,
    warnings: list[str],
    engines: list[str],
) -> list[dict[str, Any]]:
    """Print the table, the ratios, footnotes and notes; return the ratios for JSON."""
    footnotes: list[str] = []

    def cell(name: str, key: str) -> str:
        outcome = results[name]
        text = _fmt(key, outcome.figures.get(key))
        error = outcome.errors.get(WORKLOAD_OF[key])
        if text == "-" and error:
            note = f"{name} {WORKLOAD_OF[key]}: {error}"
            if note not in footnotes:
                footnotes.append(note)
            return f"- [{footnotes.index(note) + 1}]"
        if key in outcome.marks:
            note = f"{name} {key}: {outcome.marks[key]}"
            footnotes.append(note)
            return f"{text} *[{len(footnotes)}]"
        return text

    rows = [[name, *(cell(name, k) for k in COLUMNS)] for name in engines if name in results]
    ratios: list[dict[str, Any]] = []
    ratio_rows: list[list[str]] = []
    for r in RATIOS:
        v = r.value(results)
        if v is None:
            continue
        partial = any(r.figure in results[n].marks for n in (r.num, r.den))
        ratios.append(
            {
                "workload": COLUMNS[r.figure],
                "ratio": r.label(),
                "value": v,
                "partial": partial,
                "target": r.target_text(),
                "verdict": r.verdict(v),
            }
        )
        shown = f"{v:.2f}" if v >= 0.1 else f"{v:.2g}"
        ratio_rows.append(
            [
                COLUMNS[r.figure],
                r.label(),
                shown + (" *" if partial else ""),
                r.target_text(),
                r.verdict(v),
            ]
        )
    title = (
        f"SQL: (a) {spec.rows_insert:,} inserts, (b) {spec.points:,} point selects, "
        f"(c)/(d) {spec.events:,} events x {spec.users:,} users, seed {spec.seed}, "
        f"sync={spec.sync}, --max-seconds {spec.max_seconds:g}"
    )
    tables = [(title, ["engine", *COLUMNS.values()], rows, 1)]
    if ratio_rows:
        tables.append(
            (
                "ratios (> 1: Alopex(rocks) better)",
                ["workload", "ratio", "value", "target", "verdict"],
                ratio_rows,
                2,
            )
        )
    _print_tables(tables)
    for i, note in enumerate(footnotes, 1):
        print(f"[{i}] {note}")
    for name, error in failures.items():
        print(f"! {name} failed: {error}")
    for name, outcome in results.items():
        for note in outcome.notes:
            print(f"- {name}: {note}")
    for warning in warnings:
        print(f"WARNING: {warning}")
    if not checked:
        print("answers: none to check (no workload produced one)")
    elif not warnings:
        print(
            f"answers: all {checked} checked against numpy match ((a) row count, "
            f"(b) first {SAMPLE} queries, (c) and (d) first-run results)"
        )
    for note in notes(spec, engines):
        print(f"* {note}")
    return ratios


def _print_tables(tables: list[tuple[str, list[str], list[list[str]], int]]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        for table_args in tables:
            _plain_table(*table_args)
        return
    # Piped output (a log file) must not be squeezed into 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 180)
    for heading, head, body, left in tables:
        table = Table(title=heading)
        for i, h in enumerate(head):
            table.add_column(h, justify="left" if i < left else "right", no_wrap=True)
        for row in body:
            table.add_row(*row)
        console.print(table)


def _plain_table(title: str, headers: list[str], rows: list[list[str]], left: int) -> None:
    """Fallback for a machine without ``rich``: aligned columns, the first ``left`` left."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]
    print(title)
    for row in (headers, *rows):
        cells = [
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells))
    print()


# -- profiling ------------------------------------------------------------------------------


def profiler_for(directory: Path | None, engine: str, top: int = 15) -> Profiler:
    """cProfile per workload for the in-process Alopex engines (``--profile DIR``): dumps
    ``DIR/<engine>-<workload>.prof`` and prints the top functions by own time. Figures
    taken under the profiler are inflated; use them to find hot spots, not to compare."""
    if directory is None or engine not in (ROCKS, MEMORY):
        return _no_profile

    @contextmanager
    def profile(workload: str) -> Iterator[None]:
        prof = cProfile.Profile()
        prof.enable()
        try:
            yield
        finally:
            prof.disable()
            slug = engine.split("(")[1].rstrip(")")
            target = directory / f"alopex-{slug}-{workload}.prof"
            prof.dump_stats(target)
            print(f"\n== profile {engine} {workload} ({target}) ==", file=sys.stderr)
            stats = pstats.Stats(prof, stream=sys.stderr)
            stats.strip_dirs().sort_stats("tottime").print_stats(top)

    return profile


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> tuple[Spec, list[str], Path | None, Path | None]:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--rows-insert", type=int, default=100_000, help="(a) rows (default 100k)")
    p.add_argument("--points", type=int, default=10_000, help="(b) point selects (10k)")
    p.add_argument("--events", type=int, default=1_000_000, help="(c)/(d) events rows (1M)")
    p.add_argument("--users", type=int, default=10_000, help="(d) users rows (10k)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--sync",
        choices=("full", "normal", "off"),
        default="full",
        help="commit durability of Alopex(rocks) and sqlite3 (default full, Alopex's default; "
        "the Rust package fsyncs every commit)",
    )
    p.add_argument(
        "--max-seconds",
        type=float,
        default=600.0,
        help="soft budget per engine and workload; see the module docstring (default 600)",
    )
    p.add_argument("--skip-rust", action="store_true", help="do not run the Rust package")
    p.add_argument(
        "--engines",
        default=",".join(ENGINES),
        help=f"comma list out of {','.join(ENGINES)} (default: all)",
    )
    p.add_argument("--out", type=Path, help="also write the results as JSON here")
    p.add_argument(
        "--profile", type=Path, help="cProfile the Alopex engines' workloads into this dir"
    )
    a = p.parse_args(argv)
    chosen = [e.strip() for e in a.engines.split(",") if e.strip()]
    unknown = sorted(set(chosen) - ENGINES.keys())
    if unknown:
        p.error(f"unknown engine(s) {', '.join(unknown)}; choose from {', '.join(ENGINES)}")
    if a.skip_rust and "rust" in chosen:
        chosen.remove("rust")
    if min(a.rows_insert, a.points, a.events, a.users) < 1 or a.max_seconds <= 0:
        p.error("sizes must be >= 1 and --max-seconds > 0")
    spec = Spec(a.rows_insert, a.points, a.events, a.users, a.seed, a.sync, a.max_seconds)
    if a.profile is not None:
        a.profile.mkdir(parents=True, exist_ok=True)
    return spec, [ENGINES[e] for e in ENGINES if e in chosen], a.out, a.profile


def main(argv: list[str] | None = None) -> int:
    spec, engines, out, profile_dir = parse_args(argv)
    data = Data.generate(spec)
    results: dict[str, Outcome] = {}
    failures: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="alopex-bench-sql-") as tmp:
        for name in engines:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            try:
                results[name] = run_engine(
                    name, data, spec, Path(tmp), profiler_for(profile_dir, name)
                )
            except Exception as err:  # the engine could not even open, or the peer died
                failures[name] = _error(err)
            gc.collect()
            print(f"  {name}: {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
    checked, warnings = verify(data, spec, results)
    ratios = report(spec, results, failures, checked, warnings, engines)
    if out is not None:
        payload = {
            "spec": asdict(spec),
            "results": {
                name: {k: v for k, v in asdict(o).items() if k != "answers"}
                for name, o in results.items()
            },
            "ratios": ratios,
            "failures": failures,
            "warnings": warnings,
            "notes": notes(spec, engines),
        }
        out.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
