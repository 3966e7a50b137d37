"""What the lsm engine does beyond the shared contract: sync modes, group commit, flushes,
compaction, snapshots across both, settings, and what ``alopex info`` shows."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import alopex
from alopex.contracts.storage import StorageOptions
from alopex_storage_lsm.engine import LsmEngine
from alopex_storage_lsm.table import CODEC_ZSTD


def open_lsm(path: Path, sync: str = "full", **settings: Any) -> LsmEngine:
    return LsmEngine.open(StorageOptions(path, sync, {"memtable_mb": 1, **settings}))


def wal_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.glob("*.wal"))


def value(i: int, round_no: int = 0) -> bytes:
    return (b"%d:%d:" % (i, round_no)).ljust(100, b"v")


def test_sync_modes_decide_when_the_wal_is_written_and_synced(tmp_path: Path) -> None:
    for sync in ("full", "normal", "off"):
        engine = open_lsm(tmp_path / sync, sync)
        before = wal_bytes(tmp_path / sync)
        for i in range(20):
            engine.write({b"k%d" % i: b"v"}, durable=True)
        logged = wal_bytes(tmp_path / sync) > before
        syncs = engine.stats()["wal_syncs"]
        engine.write({b"lazy": b"v"}, durable=False)
        assert engine.stats()["wal_syncs"] == syncs  # a non-durable commit never fsyncs
        engine.close()
        assert (logged, syncs) == {"full": (True, 20), "normal": (True, 0), "off": (False, 0)}[sync]
        engine = open_lsm(tmp_path / sync, sync)  # close wrote even the "off" buffer
        assert engine.get(b"k19") == b"v" and engine.get(b"lazy") == b"v"
        engine.close()


def test_concurrent_durable_commits_share_fsyncs(tmp_path: Path) -> None:
    engine = open_lsm(tmp_path / "db")
    threads, per_thread = 8, 40

    def commit(n: int) -> None:
        for i in range(per_thread):
            engine.write({b"t%d/%03d" % (n, i): b"x" * 50}, durable=True)

    workers = [threading.Thread(target=commit, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    syncs = engine.stats()["wal_syncs"]
    assert len(list(engine.scan())) == threads * per_thread
    engine.close()
    assert syncs < threads * per_thread, "every commit paid its own fsync: no group commit"


def test_concurrent_commits_through_connections_share_fsyncs(tmp_path: Path) -> None:
    """The transaction manager waits for storage outside its lock, so commits from many
    connections reach the engine together (group commit end to end)."""
    config = {"storage": {"engine": "lsm", "sync": "full"}}
    threads, per_thread = 8, 25
    with alopex.connect(tmp_path / "db", config=config) as db:
        db.execute("CREATE TABLE t (thread INTEGER, i INTEGER, PRIMARY KEY (thread, i))")
        db.commit()
        syncs_before = db.info()["storage"]["wal_syncs"]

        def commit(n: int) -> None:
            with alopex.connect(tmp_path / "db", config=config) as own:
                for i in range(per_thread):
                    own.execute("INSERT INTO t VALUES (?, ?)", (n, i))
                    own.commit()
                    with own.transaction() as tx:  # read-modify-write of the thread's counter
                        key = b"count/%d" % n
                        tx.put(key, b"%d" % (int(tx.get(key) or b"0") + 1))

        workers = [threading.Thread(target=commit, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        syncs = db.info()["storage"]["wal_syncs"] - syncs_before
        assert db.execute("SELECT count(*) FROM t").fetchone() == (threads * per_thread,)
        assert [db.get(b"count/%d" % n) for n in range(threads)] == [b"25"] * threads
    commits = 2 * threads * per_thread
    assert syncs < commits * 0.9, f"{syncs} fsyncs for {commits} commits: no group commit"


def test_flush_moves_data_to_tables_and_reopen_reads_them(tmp_path: Path) -> None:
    engine = open_lsm(tmp_path / "db")
    engine.write({b"k%05d" % i: value(i) for i in range(20_000)}, durable=True)
    engine.flush()
    stats = engine.stats()
    assert stats["tables"] >= 1 and stats["memtable_keys"] == 0
    engine.close()
    assert not any(p.stat().st_size for p in (tmp_path / "db").glob("*.wal"))
    engine = open_lsm(tmp_path / "db")
    assert engine.get(b"k00042") == value(42)
    assert len(list(engine.scan(b"k01000", b"k02000", reverse=True))) == 1000
    engine.close()


def test_merged_iteration_across_memtable_and_tables_matches_a_model(tmp_path: Path) -> None:
    rng = random.Random(5)
    engine = open_lsm(tmp_path / "db", compaction_trigger=50, max_space_amp_pct=10**6)
    model: dict[bytes, bytes] = {}
    for round_no in range(6):
        batch: dict[bytes, bytes | None] = {}
        for _ in range(3000):
            key = b"%05d" % rng.randrange(8000)
            batch[key] = None if rng.random() < 0.2 else value(int(key), round_no)
        engine.write(batch, durable=False)
        for key, v in batch.items():
            if v is None:
                model.pop(key, None)
            else:
                model[key] = v
        if round_no < 5:
            engine.flush()
    assert engine.stats()["tables"] == 5 and engine.stats()["memtable_keys"] > 0
    ordered = sorted(model.items())
    assert list(engine.scan()) == ordered
    assert list(engine.scan(reverse=True)) == ordered[::-1]
    for _ in range(30):
        lo, hi = sorted(b"%05d" % rng.randrange(8100) for _ in range(2))
        expected = [kv for kv in ordered if lo <= kv[0] < hi]
        assert list(engine.scan(lo, hi)) == expected
        assert list(engine.scan(lo, hi, reverse=True)) == expected[::-1]
    assert engine.multi_get([b"%05d" % i for i in range(8000)]) == [
        model.get(b"%05d" % i) for i in range(8000)
    ]
    engine.close()


def test_snapshots_survive_flushes_and_compactions(tmp_path: Path) -> None:
    engine = open_lsm(tmp_path / "db")
    engine.write({b"k%05d" % i: value(i, 0) for i in range(10_000)}, durable=True)
    first = engine.snapshot()
    engine.write({b"k%05d" % i: value(i, 1) for i in range(0, 10_000, 2)}, durable=True)
    engine.write({b"k%05d" % i: None for i in range(1, 10_000, 4)}, durable=True)
    engine.flush()
    second = engine.snapshot()
    engine.write({b"k%05d" % i: None for i in range(10_000)}, durable=True)
    engine.compact()
    assert list(engine.scan()) == []
    assert first.get(b"k00002") == value(2, 0) and second.get(b"k00002") == value(2, 1)
    assert first.get(b"k00001") == value(1, 0) and second.get(b"k00001") is None
    assert len(list(first.scan())) == 10_000
    assert len(list(second.scan(reverse=True))) == 10_000 - 2500
    kept = engine.stats()["entries"]
    first.close()
    second.close()
    engine.compact()  # nothing needs the old versions or the tombstones any more
    assert engine.stats()["entries"] == 0 < kept
    engine.close()


def test_space_amplification_stays_bounded_when_overwriting(tmp_path: Path) -> None:
    """20k keys overwritten 15 times: table bytes stay within 2.5x the live data."""
    engine = open_lsm(tmp_path / "db")
    keys = [b"key%013d" % i for i in range(20_000)]
    rng = random.Random(3)
    worst = 0.0
    for _ in range(15):
        payload = rng.randbytes(100)
        for start in range(0, len(keys), 1000):
            engine.write({k: payload for k in keys[start : start + 1000]}, durable=False)
        engine.wait_idle()
        worst = max(worst, engine.stats()["table_bytes"])
    engine.compact()
    live = engine.stats()["table_bytes"]
    engine.close()
    assert worst / live <= 2.5, f"space amplification reached {worst / live:.2f}"


def test_settings_are_validated_and_applied(tmp_path: Path) -> None:
    config = {"storage": {"engine": "lsm", "lsm": {"compression": "zstd", "block_kb": 8}}}
    with alopex.connect(tmp_path / "db", config=config) as db:
        with db.transaction() as tx:
            for i in range(2000):
                tx.put(b"k%05d" % i, b"x" * 100)
        db.database.engine.flush()
        assert db.info()["storage"]["engine"] == "lsm"
    (table,) = (tmp_path / "db" / "data").glob("*.sst")
    assert table.read_bytes()[0] == CODEC_ZSTD
    with pytest.raises(alopex.ConfigError, match="'none', 'lz4', 'zstd'"):
        alopex.connect(tmp_path / "db2", config={"storage": {"lsm": {"compression": "gz"}}})


def test_info_shows_levels_tables_sizes_and_amplification(tmp_path: Path) -> None:
    path = tmp_path / "db"
    settings = {"memtable_mb": 1, "compaction_trigger": 8, "max_space_amp_pct": 10**6}
    config = {"storage": {"engine": "lsm", "lsm": settings}}
    with alopex.connect(path, config=config) as db:
        for round_no in range(3):
            with db.transaction() as tx:
                for i in range(10_000):
                    tx.put(b"k%05d" % i, value(i, round_no))
            db.database.engine.flush()
    env = {**os.environ, "COLUMNS": "250"}
    result = subprocess.run(
        [sys.executable, "-m", "alopex", "info", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for fact in (
        "storage.engine",
        "storage.levels.L0",
        "storage.levels.L2",
        "storage.tables",
        "storage.table_bytes",
        "storage.write_amplification",
        "storage.space_amplification",
    ):
        assert fact in out, f"{fact} missing from:\n{out}"
    assert "lsm" in out and "entries" in out


def test_open_scan_keeps_reading_while_compaction_deletes_its_tables(tmp_path: Path) -> None:
    engine = open_lsm(tmp_path / "db", compaction_trigger=50, max_space_amp_pct=10**6)
    for round_no in range(3):
        engine.write({b"k%05d" % i: value(i, round_no) for i in range(20_000)}, durable=False)
        engine.flush()
    pairs = engine.scan()
    head = [next(pairs) for _ in range(100)]
    before = {p.name for p in (tmp_path / "db").glob("*.sst")}
    engine.write({b"k%05d" % i: None for i in range(0, 20_000, 2)}, durable=False)
    engine.compact()
    assert before.isdisjoint(p.name for p in (tmp_path / "db").glob("*.sst"))
    rest = list(pairs)
    assert [k for k, _ in head + rest] == [b"k%05d" % i for i in range(20_000)]
    assert all(v == value(int(k[1:]), 2) for k, v in head + rest)
    assert len(list(engine.scan())) == 10_000
    engine.close()


def test_writers_and_snapshot_readers_race_flushes_and_compactions(tmp_path: Path) -> None:
    """Each writer keeps its two keys equal in every batch; every snapshot must see them
    equal, while 1 MiB memtables flush and merge under the readers' feet."""
    engine = open_lsm(tmp_path / "db", compaction_trigger=2)
    errors: list[BaseException] = []
    stop = threading.Event()
    filler = b"f" * 100

    def writer(n: int) -> None:
        try:
            for i in range(150):
                batch = {b"w%d/a" % n: b"%d" % i, b"w%d/b" % n: b"%d" % i}
                batch.update({b"fill/%d/%03d/%03d" % (n, i, j): filler for j in range(200)})
                engine.write(batch, durable=False)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    def reader() -> None:
        try:
            while not stop.is_set():
                with engine.snapshot() as snap:
                    for n in range(3):
                        assert snap.get(b"w%d/a" % n) == snap.get(b"w%d/b" % n)
                    pairs = dict(snap.scan_prefix(b"w"))
                    for n in range(3):
                        assert pairs.get(b"w%d/a" % n) == pairs.get(b"w%d/b" % n)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    writers = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    readers = [threading.Thread(target=reader) for _ in range(2)]
    for thread in writers + readers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    for thread in readers:
        thread.join()
    assert not errors, errors
    engine.wait_idle()
    stats = engine.stats()
    assert stats["compactions"] >= 1
    assert sum(1 for _ in engine.scan_prefix(b"fill/")) == 3 * 150 * 200
    assert [engine.get(b"w%d/a" % n) for n in range(3)] == [b"149"] * 3
    engine.close()


def test_a_closed_engine_refuses_reads_and_writes(tmp_path: Path) -> None:
    from alopex.errors import StorageError

    engine = open_lsm(tmp_path / "db")
    engine.write({b"k": b"v"}, durable=True)
    snapshot = engine.snapshot()
    engine.close()
    engine.close()  # twice is fine
    for read in (lambda: engine.get(b"k"), lambda: list(engine.scan()), lambda: snapshot.get(b"k")):
        with pytest.raises(StorageError, match="closed"):
            read()
    with pytest.raises(StorageError, match="closed"):
        engine.write({b"k": b"w"}, durable=True)


def test_merge_keeping_versions_for_snapshots_reads_back_one_pair_per_key(
    tmp_path: Path,
) -> None:
    """Three versions per key, merged while two snapshots are open: the merged table holds
    them all, and every reader still sees each key once, with its own version."""
    engine = open_lsm(tmp_path / "db", compaction_trigger=50, max_space_amp_pct=10**6)
    keys = [b"k%05d" % i for i in range(5000)]
    snapshots = []
    for round_no in range(3):
        engine.write({k: value(i, round_no) for i, k in enumerate(keys)}, durable=False)
        engine.flush()
        snapshots.append(engine.snapshot())
    engine.write({k: value(i, 3) for i, k in enumerate(keys)}, durable=False)
    snapshots[2].close()
    engine.compact()  # snapshots 0 and 1 need their versions: 3 per key survive
    assert engine.stats()["entries"] == 3 * len(keys)
    for round_no, reader in [(0, snapshots[0]), (1, snapshots[1]), (3, engine)]:
        pairs = list(reader.scan())
        assert [k for k, _ in pairs] == keys
        assert all(v == value(i, round_no) for i, (_, v) in enumerate(pairs))
        assert [k for k, _ in reader.scan(reverse=True)] == keys[::-1]
        assert reader.get(keys[1365]) == value(1365, round_no)
    snapshots[0].close()
    snapshots[1].close()
    engine.close()


def test_versions_of_one_key_across_a_merge_chunk_boundary(tmp_path: Path) -> None:
    """The only key with two versions lands at entries 4095 and 4096 of a merge, where
    the merge hands the table writer its chunks: the table must not call itself unique."""
    engine = open_lsm(tmp_path / "db", compaction_trigger=50, max_space_amp_pct=10**6)
    engine.write({b"a%05d" % i: b"x" for i in range(4095)} | {b"z": b"old"}, durable=False)
    engine.flush()
    snapshot = engine.snapshot()
    engine.write({b"z": b"new"}, durable=False)
    engine.flush()
    engine.compact()
    assert engine.stats()["entries"] == 4097
    assert list(engine.scan(b"y")) == [(b"z", b"new")]
    assert list(snapshot.scan(b"y")) == [(b"z", b"old")]
    assert sum(1 for _ in engine.scan()) == 4096
    snapshot.close()
    engine.close()
