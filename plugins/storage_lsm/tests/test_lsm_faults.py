"""Fault injection on real files and real processes: each fault either recovers to every
acknowledged commit or fails loudly with StorageCorruption naming the file and offset.

Crashes at exact points use ``ALOPEX_LSM_FAULT=<point>[:<n>]``: the engine SIGKILLs its
own process the n-th time it reaches that point (a mid-written compaction output, a half-written
``MANIFEST.tmp``, a renamed but not yet directory-synced MANIFEST, a mid-written flush).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import alopex
from alopex.contracts.storage import StorageOptions
from alopex.errors import StorageCorruption
from alopex_storage_lsm.engine import LsmEngine
from alopex_storage_lsm.files import MANIFEST_TMP


def open_lsm(path: Path, **settings: object) -> LsmEngine:
    return LsmEngine.open(StorageOptions(path, "full", {"memtable_mb": 1, **settings}))


def batch(i: int) -> dict[bytes, bytes | None]:
    return {b"b%06d/%03d" % (i, j): (b"%d:%d" % (i, j)).ljust(100, b".") for j in range(100)}


def write_batches(path: Path, count: int) -> None:
    engine = open_lsm(path)
    for i in range(count):
        engine.write(batch(i), durable=True)
    engine.close()


def held_batches(engine: LsmEngine) -> int:
    """How many leading batches the store holds whole (asserting there is nothing else)."""
    keys = [k for k, _ in engine.scan()]
    n = len(keys) // 100
    assert keys == sorted(k for i in range(n) for k in batch(i)), "not a prefix of batches"
    assert all(engine.get(k) == v for k, v in batch(n - 1).items()) if n else True
    return n


# -- the write-ahead log --------------------------------------------------------------------


def test_truncated_wal_drops_only_the_torn_batch(tmp_path: Path) -> None:
    write_batches(tmp_path / "db", 5)
    (wal,) = [p for p in (tmp_path / "db").glob("*.wal") if p.stat().st_size]
    with open(wal, "r+b") as file:
        file.truncate(wal.stat().st_size - 7)  # the last record loses its tail
    with pytest.warns(RuntimeWarning, match="dropped a torn tail"):
        engine = open_lsm(tmp_path / "db")
    assert held_batches(engine) == 4
    engine.write(batch(4), durable=True)
    engine.close()
    engine = open_lsm(tmp_path / "db")  # the truncated file is clean now: no warning
    assert held_batches(engine) == 5
    engine.close()


def test_flipped_bit_inside_the_wal_fails_loudly(tmp_path: Path) -> None:
    write_batches(tmp_path / "db", 5)
    (wal,) = [p for p in (tmp_path / "db").glob("*.wal") if p.stat().st_size]
    data = bytearray(wal.read_bytes())
    data[len(data) // 3] ^= 0x10  # inside an early record: durable commits follow it
    wal.write_bytes(bytes(data))
    with pytest.raises(StorageCorruption, match=r"\.wal.*at offset \d+"):
        open_lsm(tmp_path / "db")


# -- table files ----------------------------------------------------------------------------


def flushed(path: Path) -> Path:
    engine = open_lsm(path)
    for i in range(30):
        engine.write(batch(i), durable=True)
    engine.flush()
    engine.close()
    (table,) = path.glob("*.sst")
    return table


def test_flipped_bit_in_a_table_block_is_reported_with_file_and_offset(tmp_path: Path) -> None:
    table = flushed(tmp_path / "db")
    data = bytearray(table.read_bytes())
    data[100] ^= 0x01  # inside the first data block
    table.write_bytes(bytes(data))
    engine = open_lsm(tmp_path / "db")
    message = rf"{table.name}.*fails its checksum.*offset 0"
    with pytest.raises(StorageCorruption, match=message):
        engine.get(b"b000000/000")
    with pytest.raises(StorageCorruption, match=message):
        list(engine.scan())
    assert engine.get(b"b000029/099") == batch(29)[b"b000029/099"]  # other blocks still read
    engine.close()


def test_damaged_table_footer_fails_at_open(tmp_path: Path) -> None:
    table = flushed(tmp_path / "db")
    data = bytearray(table.read_bytes())
    data[-10] ^= 0xFF
    table.write_bytes(bytes(data))
    with pytest.raises(StorageCorruption, match=rf"{table.name}.*damaged footer.*offset \d+"):
        open_lsm(tmp_path / "db")


def test_missing_table_file_fails_at_open(tmp_path: Path) -> None:
    table = flushed(tmp_path / "db")
    table.unlink()
    with pytest.raises(StorageCorruption, match=rf"{table.name}.*missing"):
        open_lsm(tmp_path / "db")


def test_damaged_manifest_fails_at_open(tmp_path: Path) -> None:
    flushed(tmp_path / "db")
    manifest = tmp_path / "db" / "MANIFEST"
    data = bytearray(manifest.read_bytes())
    data[-3] ^= 0x40
    manifest.write_bytes(bytes(data))
    with pytest.raises(StorageCorruption, match="MANIFEST.*damaged"):
        open_lsm(tmp_path / "db")


# -- crashes at exact points ----------------------------------------------------------------

CHILD = """
import sys
from pathlib import Path
from alopex.contracts.storage import StorageOptions
from alopex_storage_lsm.engine import LsmEngine

settings = {"memtable_mb": 1, "compaction_trigger": 2}
engine = LsmEngine.open(StorageOptions(Path(sys.argv[1]), "full", settings))
start = int(sys.argv[2])
for i in range(start, start + 100_000):
    engine.write(
        {b"b%06d/%03d" % (i, j): (b"%d:%d" % (i, j)).ljust(100, b".") for j in range(100)},
        durable=True,
    )
    print(i, flush=True)
"""


def crash_at(point: str, path: Path, start: int) -> int:
    """Run a committing child until it kills itself at ``point``; the last acked batch."""
    env = {**os.environ, "ALOPEX_LSM_FAULT": point}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(start)],
        capture_output=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    acked = [int(n) for n in proc.stdout.split()]
    # After a crash the replayed memtable may be full: the flush at start-up can reach
    # the fault point before any new commit.
    return acked[-1] if acked else start - 1


@pytest.mark.parametrize(
    "point", ["flush-mid", "compaction-mid", "manifest-tmp:3", "manifest-renamed:4"]
)
def test_crash_at_a_fault_point_keeps_every_acknowledged_commit(tmp_path: Path, point: str) -> None:
    path = tmp_path / "db"
    held = 0
    for round_no in range(2):  # the second run recovers from the first crash, then crashes
        acked = crash_at(point, path, held)
        assert round_no or acked >= 0, "the child committed nothing before the fault"
        engine = open_lsm(path, compaction_trigger=2)
        try:
            held = held_batches(engine)
            assert held >= acked + 1, f"batch {acked} was acknowledged but is missing"
            engine.wait_idle()  # a flush of the replayed memtable may be running
            assert not (path / MANIFEST_TMP).exists()
            live = {int(p.stem) for p in path.glob("*.sst")}
            assert live == {t.number for t in engine._state.runs}, "orphan table left behind"
        finally:
            engine.close()


def test_deleted_manifest_with_tables_left_fails_at_open(tmp_path: Path) -> None:
    flushed(tmp_path / "db")
    (tmp_path / "db" / "MANIFEST").unlink()
    with pytest.raises(StorageCorruption, match="no MANIFEST"):
        open_lsm(tmp_path / "db")


WAL_FULL_CHILD = """
import resource, signal, sys
from pathlib import Path
from alopex.contracts.storage import StorageOptions
from alopex.errors import StorageError
from alopex_storage_lsm.engine import LsmEngine

engine = LsmEngine.open(StorageOptions(Path(sys.argv[1]), "full", {}))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-big write fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))
i = 0
try:
    while True:
        engine.write(
            {b"b%06d/%03d" % (i, j): (b"%d:%d" % (i, j)).ljust(100, b".") for j in range(100)},
            durable=True,
        )
        i += 1
except StorageError as err:
    assert "write-ahead log failed" in str(err), err
try:
    engine.write({b"later": b"x"}, durable=True)
except StorageError as err:
    assert "stopped writes" in str(err), err
else:
    raise AssertionError("a write after a failed WAL write was accepted")
print(i)
"""


def batches_before_the_disk_filled(child: str, path: Path) -> int:
    """Run ``child`` (it writes batches until a capped file size fails a WAL write)."""
    proc = subprocess.run(
        [sys.executable, "-c", child, str(path)], capture_output=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    acked = int(proc.stdout)
    assert acked > 0
    return acked


def test_failed_wal_write_stops_writes_and_reopen_keeps_every_acked_batch(
    tmp_path: Path,
) -> None:
    acked = batches_before_the_disk_filled(WAL_FULL_CHILD, tmp_path / "db")
    with pytest.warns(RuntimeWarning, match="torn tail"):
        engine = open_lsm(tmp_path / "db")
    assert held_batches(engine) == acked
    engine.close()


CONNECTED_WAL_FULL_CHILD = """
import resource, signal, sys
import alopex
from alopex.errors import StorageError

db = alopex.connect(sys.argv[1], config={"storage": {"engine": "lsm", "sync": "full"}})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))
i = 0
try:
    while True:
        with db.transaction() as tx:
            for j in range(100):
                tx.put(b"b%06d/%03d" % (i, j), (b"%d:%d" % (i, j)).ljust(100, b"."))
        i += 1
except StorageError as err:
    assert "write-ahead log failed" in str(err), err
try:
    db.put(b"later", b"x")
except StorageError as err:
    assert "earlier commit failed" in str(err), err
else:
    raise AssertionError("a commit after a failed commit was accepted")
with db.transaction() as tx:  # reads go on
    assert tx.get(b"b000000/000") is not None
print(i)
"""


def test_a_commit_that_fails_in_storage_stops_later_commits_and_keeps_acked_ones(
    tmp_path: Path,
) -> None:
    """Through the transaction manager's pipeline (commits wait for storage outside its
    lock): the failed commit raises, later ones are refused, reads go on, and a reopen
    holds exactly the acknowledged commits."""
    acked = batches_before_the_disk_filled(CONNECTED_WAL_FULL_CHILD, tmp_path / "db")
    with (
        pytest.warns(RuntimeWarning, match="torn tail"),
        alopex.connect(tmp_path / "db", config={"storage": {"engine": "lsm"}}) as db,
    ):
        held = dict(db.scan())
    assert held == {k: v for i in range(acked) for k, v in batch(i).items()}


INTERRUPTED_CHILD = """
import os, signal, sys, threading, time
import alopex

real_fdatasync, slow = os.fdatasync, threading.Event()

def fdatasync(fd):  # a slow disk: the leader's fsync takes 0.6 s
    if slow.is_set():
        time.sleep(0.6)
    return real_fdatasync(fd)

os.fdatasync = fdatasync
db = alopex.connect(sys.argv[1], config={"storage": {"engine": "lsm", "sync": "full"}})
db.put(b"x", b"0")
slow.set()
leader = threading.Thread(target=db.put, args=(b"a", b"1"))
leader.start()
time.sleep(0.1)
behind = threading.Thread(target=db.put, args=(b"c", b"3"), daemon=True)
threading.Timer(0.1, behind.start).start()
main = threading.main_thread().ident
threading.Timer(0.3, lambda: signal.pthread_kill(main, signal.SIGINT)).start()
try:
    db.put(b"b", b"2")  # queued behind the leader when Ctrl-C arrives
except KeyboardInterrupt:
    pass
else:
    raise AssertionError("the interrupt was lost")
leader.join()
behind.join(5)
assert not behind.is_alive(), "a commit queued behind the interrupted one hangs"
closer = threading.Thread(target=db.close, daemon=True)
closer.start()
closer.join(5)
assert not closer.is_alive(), "close() hangs"
print("ok")
"""


def test_an_interrupted_commit_does_not_strand_the_commits_queued_behind_it(
    tmp_path: Path,
) -> None:
    """Ctrl-C while a commit waits for another writer's fsync: the commit still settles
    (writers behind it would otherwise wait for ever), then the interrupt is raised."""
    proc = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_CHILD, str(tmp_path / "db")],
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == b"ok", proc.stderr.decode()[-2000:]
    with alopex.connect(tmp_path / "db", config={"storage": {"engine": "lsm"}}) as db:
        assert db.get(b"x") == b"0" and db.get(b"a") == b"1"
