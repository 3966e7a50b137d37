"""Key-value benchmark: Alopex against raw RocksDB, SQLite and the Rust Alopex, in one run.

Every engine gets the same data in the same process run, so the ratios printed at the end
are comparable even on a noisy machine. Keys and the order they are touched in are drawn
exactly as ``bench/rust_peer.py`` draws them, because the Rust package (PyPI ``alopex``,
same import name as ours) has to run in its own venv and cannot be handed our lists.

Each engine family only says *how* to put a batch, get a key, open a read snapshot and
scan; the timing loops are shared (``measure``), so every engine pays the same Python
loop overhead and the figures differ only by what the engine itself costs.

After the load, the persistent engines that can flush their memtable (Alopex(lsm),
Alopex(rocks), raw rocksdict) do so, untimed, so the reads measure data in table files.

Usage: ``python bench/kv.py [--keys N] [--sync full|normal|off] [--engines lsm,rocks]``
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import asdict, dataclass
from itertools import islice, repeat
from pathlib import Path
from typing import Any

import rocksdict

import alopex

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rust_peer import RUST_VERSION, run_rust_kv
from targets import target_text, verdict

WORKLOADS = ("put", "get", "get(tx)", "scan", "full scan", "8 writers")
UNITS = {
    "put": "keys/s",
    "get": "gets/s",
    "get(tx)": "gets/s",
    "scan": "keys/s",
    "full scan": "keys/s",
    "8 writers": "commits/s",
}
WRITERS, COMMITS_PER_WRITER = 8, 250

MEMORY = "Alopex(memory)"
LSM = "Alopex(lsm)"
ROCKS = "Alopex(rocks)"
ROCKSDICT = "raw rocksdict"
SQLITE = "sqlite3"
RUST = f"Rust alopex {RUST_VERSION}"
ENGINES = {
    "memory": MEMORY,
    "lsm": LSM,
    "rocks": ROCKS,
    "rocksdict": ROCKSDICT,
    "sqlite": SQLITE,
    "rust": RUST,
}

Results = dict[str, float]
Getter = Callable[[bytes], bytes | None]


@dataclass(frozen=True)
class Spec:
    """The knobs of one run; written into the JSON output so a result can be reproduced."""

    keys: int
    batch: int
    gets: int
    scans: int
    scan_len: int
    seed: int
    sync: str


@dataclass(frozen=True)
class Data:
    """Inputs shared by every engine, generated once and outside every timed section."""

    keys: list[bytes]
    value: bytes
    batches: list[list[bytes]]
    get_keys: list[bytes]
    scan_starts: list[bytes]
    scan_len: int

    @classmethod
    def generate(cls, spec: Spec) -> Data:
        """Mirror ``rust_peer.KV_DRIVER`` draw for draw, so the Rust peer sees the same data."""
        n = spec.keys
        keys = [b"key%013d" % i for i in range(n)]
        value = random.Random(spec.seed).randbytes(100)
        order = list(keys)
        random.Random(spec.seed).shuffle(order)
        rng = random.Random(spec.seed + 1)
        get_keys = [keys[rng.randrange(n)] for _ in range(spec.gets)]
        scan_starts = [keys[rng.randrange(n - spec.scan_len + 1)] for _ in range(spec.scans)]
        batches = [order[s : s + spec.batch] for s in range(0, n, spec.batch)]
        return cls(keys, value, batches, get_keys, scan_starts, spec.scan_len)


@dataclass(frozen=True)
class Ops:
    """What one engine family must provide; ``measure`` does the timing for all of them.

    ``scan(start)`` may return more than ``scan_len`` pairs: ``measure`` cuts it with
    ``islice`` as a user of ``db.scan`` would.
    """

    put_batch: Callable[[list[bytes], bytes], None]
    get: Getter
    read_tx: Callable[[], AbstractContextManager[Getter]]
    scan: Callable[[bytes], Iterable[tuple[bytes, bytes]]]
    full_scan: Callable[[], Iterable[tuple[bytes, bytes]]]
    #: run untimed after the load: push the memtable to table files
    settle: Callable[[], None] = lambda: None
    #: opens one thread's writer: ``commit(key, value)`` commits one key on its own
    writer: Callable[[], Callable[[bytes, bytes], None]] | None = None


def _rate(count: int, run: Callable[[], None]) -> float:
    """``count / seconds`` of ``run``, after a collection so earlier garbage is not billed."""
    gc.collect()
    t0 = time.perf_counter()
    run()
    return count / (time.perf_counter() - t0)


def _check(ok: bool, what: str) -> None:
    """Fail loudly: a fast wrong answer is not a result."""
    if not ok:
        raise SystemExit(f"verification failed: {what}")


def measure(ops: Ops, data: Data) -> Results:
    """Time every workload through ``ops`` in a fixed order, verifying answers untimed."""
    value, get_keys, scan_len = data.value, data.get_keys, data.scan_len
    out: Results = {}

    def put_all() -> None:
        put_batch = ops.put_batch
        for batch in data.batches:
            put_batch(batch, value)

    out["put"] = _rate(len(data.keys), put_all)
    ops.settle()

    def get_all(get: Getter) -> None:
        for key in get_keys:
            get(key)

    if get_keys:
        out["get"] = _rate(len(get_keys), lambda: get_all(ops.get))
        with ops.read_tx() as get:
            out["get(tx)"] = _rate(len(get_keys), lambda: get_all(get))
            _check(all(get(k) == value for k in get_keys[:100]), "get(tx) returned a wrong value")
        sample = [*get_keys[:100], data.keys[0], data.keys[-1]]
        _check(all(ops.get(k) == value for k in sample), "get returned a wrong value")
        _check(ops.get(b"key-missing") is None, "a missing key returned a value")

    read = 0

    def scan_all() -> None:
        nonlocal read
        scan = ops.scan
        for start in data.scan_starts:
            read += len(list(islice(scan(start), scan_len)))

    if data.scan_starts:
        out["scan"] = _rate(len(data.scan_starts) * scan_len, scan_all)
        _check(read == len(data.scan_starts) * scan_len, f"scans read {read} rows")
        first = next(iter(ops.scan(data.scan_starts[0])))
        _check(first == (data.scan_starts[0], value), "a scan started at the wrong key")

    seen = 0

    def full() -> None:
        nonlocal seen
        for _ in ops.full_scan():
            seen += 1

    out["full scan"] = _rate(len(data.keys), full)
    _check(seen == len(data.keys), f"full scan saw {seen} of {len(data.keys)} keys")

    if ops.writer is not None:
        out["8 writers"] = _rate(WRITERS * COMMITS_PER_WRITER, lambda: _writers(ops, value))
        _check(ops.get(b"writer/7/00249") == value, "a concurrent commit is missing")
    return out


def _writers(ops: Ops, value: bytes) -> None:
    """``WRITERS`` threads committing one key per commit: what group commit is for."""
    assert ops.writer is not None
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            commit = ops.writer()  # type: ignore[misc]
            for i in range(COMMITS_PER_WRITER):
                commit(b"writer/%d/%05d" % (n, i), value)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _check(not errors, f"a writer failed: {errors[:1]}")


# -- engine families ------------------------------------------------------------------------


def alopex_workload(db: alopex.Connection, data: Data) -> Results:
    """Alopex through its public API only: this is what a user's code would pay
    (``settle`` reaches the engine, untimed, to flush the memtable)."""

    def put_batch(batch: list[bytes], value: bytes) -> None:
        with db.transaction() as tx:
            put = tx.put
            for key in batch:
                put(key, value)

    @contextmanager
    def read_tx() -> Iterator[Getter]:
        with db.transaction(readonly=True) as tx:
            yield tx.get

    def settle() -> None:
        engine = db.database.engine
        engine.flush()
        wait = getattr(engine, "wait_idle", None)  # lsm: let compaction finish too
        if wait is not None:
            wait()

    ops = Ops(put_batch, db.get, read_tx, db.scan, db.scan, settle, lambda: db.put)
    try:
        return measure(ops, data)
    finally:
        db.close()


def rocksdict_workload(path: Path, data: Data, sync: str) -> Results:
    """RocksDB with no layer on top: the ceiling Alopex(rocks) is measured against.

    Default ``Options`` (as a user of rocksdict would start); Alopex(rocks) adds its own
    tuning (bloom filter, lz4, 64 MB block cache), so the ratio is not only overhead.
    """
    db = rocksdict.Rdict(str(path), rocksdict.Options(raw_mode=True))
    wopts = rocksdict.WriteOptions()
    wopts.sync = sync == "full"
    wopts.disable_wal = sync == "off"  # as Alopex(rocks) does for sync="off"

    def put_batch(batch: list[bytes], value: bytes) -> None:
        wb = rocksdict.WriteBatch(raw_mode=True)
        put = wb.put
        for key in batch:
            put(key, value)
        db.write(wb, wopts)

    @contextmanager
    def read_tx() -> Iterator[Getter]:
        # A snapshot is what a read-only transaction is on RocksDB. Snapshot has no
        # get(); every benchmarked key exists, so __getitem__ (raises on a miss) serves.
        yield db.snapshot().__getitem__

    def scan(start: bytes) -> Iterable[tuple[bytes, bytes]]:
        return db.items(from_key=start)

    def writer() -> Callable[[bytes, bytes], None]:
        return lambda key, value: db.put(key, value, wopts)

    ops = Ops(put_batch, db.get, read_tx, scan, db.items, db.flush, writer)
    try:
        return measure(ops, data)
    finally:
        db.close()


def sqlite_workload(path: Path, data: Data, sync: str) -> Results:
    """SQLite as the usual embedded baseline: one clustered two-column table.

    ``isolation_level=None`` lets us issue BEGIN/COMMIT ourselves, so a batch is exactly
    one transaction and the read-only run is exactly one read transaction.
    """
    synchronous = {"full": "FULL", "normal": "NORMAL", "off": "OFF"}[sync]
    con = sqlite3.connect(path, isolation_level=None)
    with closing(con):
        con.execute("PRAGMA journal_mode=WAL")
        con.execute(f"PRAGMA synchronous={synchronous}")
        con.execute("CREATE TABLE kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID")
        cur = con.cursor()

        def put_batch(batch: list[bytes], value: bytes) -> None:
            cur.execute("BEGIN")
            cur.executemany("INSERT INTO kv(k, v) VALUES (?, ?)", zip(batch, repeat(value)))
            cur.execute("COMMIT")

        def get(key: bytes) -> bytes | None:
            row = cur.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
            return None if row is None else row[0]

        @contextmanager
        def read_tx() -> Iterator[Getter]:
            con.execute("BEGIN")
            try:
                yield get
            finally:
                con.execute("COMMIT")

        def scan(start: bytes) -> Iterable[tuple[bytes, bytes]]:
            return con.execute(
                "SELECT k, v FROM kv WHERE k >= ? ORDER BY k LIMIT ?", (start, data.scan_len)
            )

        def full_scan() -> Iterable[tuple[bytes, bytes]]:
            return con.execute("SELECT k, v FROM kv ORDER BY k")

        def writer() -> Callable[[bytes, bytes], None]:
            own = sqlite3.connect(path, isolation_level=None, timeout=60)
            own.execute(f"PRAGMA synchronous={synchronous}")
            # one writer at a time: SQLite's file lock (busy_timeout waits for it)

            def commit(key: bytes, value: bytes) -> None:
                own.execute("INSERT INTO kv VALUES (?, ?)", (key, value))

            return commit

        ops = Ops(put_batch, get, read_tx, scan, full_scan, writer=writer)
        return measure(ops, data)


def rust_workload(spec: Spec, workdir: Path) -> Results:
    """The Rust package, in its own venv. Its ``get`` reads through ONE read-only txn,
    so it is reported as get(tx); it has no full-scan workload."""
    got = run_rust_kv(
        spec.keys, spec.batch, spec.gets, spec.scans, spec.scan_len, spec.seed, workdir
    )
    names = {"put": "put", "get": "get(tx)", "scan": "scan"}
    return {names[k]: float(v) for k, v in got.items() if k in names}


def run_engine(name: str, spec: Spec, data: Data, workdir: Path) -> Results:
    """Open ``name`` fresh under ``workdir`` and run its workloads."""
    path = workdir / name.replace(" ", "_")
    if name == MEMORY:
        return alopex_workload(alopex.connect(":memory:"), data)
    if name in (ROCKS, LSM):
        engine = "rocks" if name == ROCKS else "lsm"
        config = {"storage": {"engine": engine, "sync": spec.sync}}
        return alopex_workload(alopex.connect(path, config=config), data)
    if name == ROCKSDICT:
        return rocksdict_workload(path, data, spec.sync)
    if name == SQLITE:
        return sqlite_workload(path.with_suffix(".db"), data, spec.sync)
    if name == RUST:
        return rust_workload(spec, workdir)
    raise ValueError(f"unknown engine {name!r}")


# -- report ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ratio:
    """One ``num / den`` comparison; ``target`` is a floor it must reach (``None``: info)."""

    label: str
    workload: str
    num: str
    num_workload: str
    den: str
    den_workload: str
    target: float | None = None
    strict: bool = False  # the target must be exceeded, not merely reached

    def value(self, results: dict[str, Results]) -> float | None:
        a = results.get(self.num, {}).get(self.num_workload)
        b = results.get(self.den, {}).get(self.den_workload)
        return None if a is None or not b else a / b

    def verdict(self, ratio: float) -> str:
        return verdict(ratio, self.target, self.strict)

    def target_text(self) -> str:
        return target_text(self.target, self.strict)


#: issue 5's absolute floors for Alopex(lsm) at 1M keys (ops/s)
LSM_FLOORS = {"put": 150_000, "get": 60_000, "full scan": 1_000_000}

RATIOS = [
    Ratio("rocks / rocksdict", "put", ROCKS, "put", ROCKSDICT, "put", 0.5),
    Ratio("rocks / rocksdict", "get", ROCKS, "get", ROCKSDICT, "get", 0.5),
    Ratio("rocks / rocksdict", "get(tx)", ROCKS, "get(tx)", ROCKSDICT, "get(tx)"),
    Ratio("rocks / rocksdict", "scan", ROCKS, "scan", ROCKSDICT, "scan"),
    Ratio("rocks / Rust", "put", ROCKS, "put", RUST, "put", 1.0, strict=True),
    # The Rust peer only reads through a txn; db.get is compared with it as well,
    # because it is the path a user of either package calls for a point read.
    Ratio("rocks / Rust", "get vs Rust get(tx)", ROCKS, "get", RUST, "get(tx)", 1.0, strict=True),
    Ratio("rocks / Rust", "get(tx)", ROCKS, "get(tx)", RUST, "get(tx)", 1.0, strict=True),
    Ratio("rocks / Rust", "scan", ROCKS, "scan", RUST, "scan"),
    *(Ratio("rocks / sqlite3", w, ROCKS, w, SQLITE, w) for w in WORKLOADS),
    # issue 5: each of put, get and full scan at least a third of Alopex(rocks)
    *(
        Ratio("lsm / rocks", w, LSM, w, ROCKS, w, 1 / 3 if w in LSM_FLOORS else None)
        for w in WORKLOADS
    ),
    Ratio("lsm / Rust", "put", LSM, "put", RUST, "put"),
    Ratio("lsm / Rust", "get vs Rust get(tx)", LSM, "get", RUST, "get(tx)"),
    Ratio("lsm / Rust", "get(tx)", LSM, "get(tx)", RUST, "get(tx)"),
    Ratio("lsm / Rust", "scan", LSM, "scan", RUST, "scan"),
]


def notes(spec: Spec, engines: list[str]) -> list[str]:
    """Caveats that change how the numbers should be read; printed with every table."""
    out = [
        f"sync={spec.sync!r} for Alopex(lsm), Alopex(rocks), raw rocksdict and sqlite3 "
        f"(full: fsync every commit; normal: WAL without fsync; off: no WAL for RocksDB, "
        f"synchronous=OFF for SQLite).",
        "After the load Alopex(lsm), Alopex(rocks) and raw rocksdict flush their memtables "
        "(untimed; lsm also lets its compaction finish), so reads come from table files.",
        f"{ROCKS} uses its own RocksDB tuning (bloom filter, lz4, 64 MB block cache); "
        f"{ROCKSDICT} uses rocksdict defaults.",
        f"Data lives under {tempfile.gettempdir()} (set TMPDIR to bench another disk).",
    ]
    if RUST in engines:
        out.append(
            f"{RUST} fsyncs every commit (durable) whatever --sync says"
            + (
                "."
                if spec.sync == "full"
                else "; its put is NOT like-for-like with "
                f"sync={spec.sync!r}, use --sync full for that."
            )
        )
        out.append(
            f"{RUST} reads through one read-only txn only: its 'get' is shown as "
            "get(tx); it runs no full scan."
        )
    return out


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def report(
    spec: Spec, results: dict[str, Results], failures: dict[str, str], engines: list[str]
) -> list[dict[str, Any]]:
    """Print the results table, the ratios and the notes; return the ratios for JSON."""
    rows = [
        [name, *(_fmt(results[name].get(w)) for w in WORKLOADS)]
        for name in engines
        if name in results
    ]
    ratios = []
    for r in RATIOS:
        v = r.value(results)
        if v is not None:
            ratios.append(
                {
                    "comparison": r.label,
                    "workload": r.workload,
                    "ratio": v,
                    "target": r.target_text(),
                    "verdict": r.verdict(v),
                }
            )
    for workload, floor in LSM_FLOORS.items():
        got = results.get(LSM, {}).get(workload)
        if got is not None:
            ratios.append(
                {
                    "comparison": f"{LSM} ops/s",
                    "workload": workload,
                    "ratio": got,
                    "target": f">= {floor:,}",
                    "verdict": verdict(got, floor, False),
                }
            )
    title = (
        f"KV ops/s: {spec.keys:,} keys, batch {spec.batch:,}, {spec.gets:,} gets, "
        f"{spec.scans:,} scans x {spec.scan_len}, seed {spec.seed}, sync={spec.sync}"
    )
    headers = ["engine", *(f"{w} ({UNITS[w]})" for w in WORKLOADS)]
    ratio_rows = [
        [
            x["comparison"],
            x["workload"],
            f"{x['ratio']:,.0f}" if x["ratio"] >= 1000 else f"{x['ratio']:.2f}",
            x["target"],
            x["verdict"],
        ]
        for x in ratios
    ]
    ratio_headers = ["ratio", "workload", "value", "target", "verdict"]
    tables = [(title, headers, rows, 1)]
    if ratio_rows:
        tables.append(("ratios", ratio_headers, ratio_rows, 2))
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        for table_args in tables:
            _plain_table(*table_args)
    else:
        # Piped output (a log file) must not be squeezed into 80 columns.
        console = Console(width=None if sys.stdout.isatty() else 160)
        for heading, head, body, left in tables:
            table = Table(title=heading)
            for i, h in enumerate(head):
                table.add_column(h, justify="left" if i < left else "right", no_wrap=True)
            for row in body:
                table.add_row(*row)
            console.print(table)
    for name, error in failures.items():
        print(f"! {name} failed: {error}")
    for note in notes(spec, engines):
        print(f"* {note}")
    return ratios


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


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> tuple[Spec, list[str], Path | None]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--keys", type=int, default=1_000_000, help="keys to load (default 1M)")
    p.add_argument("--batch", type=int, default=1000, help="keys per put transaction")
    p.add_argument("--gets", type=int, default=200_000, help="random point gets")
    p.add_argument("--scans", type=int, default=2000, help="range scans from random starts")
    p.add_argument("--scan-len", type=int, default=100, help="keys per range scan")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--sync",
        choices=("full", "normal", "off"),
        default="full",
        help="commit durability of the persistent engines (default full, Alopex's default; "
        "the Rust package fsyncs every commit)",
    )
    p.add_argument("--skip-rust", action="store_true", help="do not run the Rust package")
    p.add_argument(
        "--engines",
        default=",".join(ENGINES),
        help=f"comma list out of {','.join(ENGINES)} (default: all)",
    )
    p.add_argument("--out", type=Path, help="also write the results as JSON here")
    a = p.parse_args(argv)
    chosen = [e.strip() for e in a.engines.split(",") if e.strip()]
    unknown = sorted(set(chosen) - ENGINES.keys())
    if unknown:
        p.error(f"unknown engine(s) {', '.join(unknown)}; choose from {', '.join(ENGINES)}")
    if a.skip_rust and "rust" in chosen:
        chosen.remove("rust")
    if a.keys < 1 or a.batch < 1 or a.gets < 0 or a.scans < 0:
        p.error("--keys and --batch must be >= 1, --gets and --scans >= 0")
    if a.scans and not 1 <= a.scan_len <= a.keys:
        p.error("--scan-len must be in 1..--keys")
    spec = Spec(a.keys, a.batch, a.gets, a.scans, a.scan_len, a.seed, a.sync)
    return spec, [ENGINES[e] for e in ENGINES if e in chosen], a.out


def main(argv: list[str] | None = None) -> int:
    spec, engines, out = parse_args(argv)
    data = Data.generate(spec)
    results: dict[str, Results] = {}
    failures: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="alopex-bench-kv-") as tmp:
        for name in engines:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            try:
                results[name] = run_engine(name, spec, data, Path(tmp))
            except RuntimeError as err:  # the Rust peer's venv or driver failed
                if name != RUST:
                    raise
                failures[name] = str(err).strip().splitlines()[-1]
    ratios = report(spec, results, failures, engines)
    if out is not None:
        payload = {
            "spec": asdict(spec),
            "results": results,
            "ratios": ratios,
            "failures": failures,
            "notes": notes(spec, engines),
        }
        out.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
