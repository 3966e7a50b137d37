"""The ``lsm`` engine: WAL + memtable + sorted tables, flushed and compacted in the background.

Writes: a writer queues its batch; the writer at the head of the queue (the leader) logs
every queued batch with one ``write()`` and, when one of them is durable under
``sync = "full"``, one fsync -- that is the group commit -- then applies them to the
memtable and wakes the others. A full memtable is frozen and a new WAL file started; the
background thread writes the frozen memtable to a table file, records it in the
MANIFEST, and deletes the WAL files it no longer needs.

Reads see an immutable ``_State`` (memtable, frozen memtables, sorted runs) swapped
atomically, so a read never locks. Snapshots are a sequence number plus a registration;
the memtable keeps overwritten versions and compaction keeps the versions that a
registered snapshot still sees. Compaction is size-tiered ("universal"): see
docs/storage_lsm.md for the choice and its write and space amplification.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from operator import itemgetter
from pathlib import Path
from typing import Any

from alopex.contracts.storage import (
    KeyValue,
    Snapshot,
    StorageEngine,
    StorageOptions,
    WriteBatch,
    fsync_path,
)
from alopex.errors import StorageCorruption, StorageError
from alopex_storage_lsm.files import (
    MANIFEST_TMP,
    encode_record,
    fault,
    read_manifest,
    replay_wal,
    wal_name,
    write_all,
    write_manifest,
)
from alopex_storage_lsm.memtable import Memtable
from alopex_storage_lsm.merge import (
    MemSource,
    Source,
    TableSource,
    keep_versions,
    merge_chunks,
    merge_pairs,
    merge_versions,
)
from alopex_storage_lsm.table import (
    CODECS,
    MISS,
    BlockCache,
    Table,
    TableWriter,
    bloom_hash,
    table_name,
)

#: a sequence number newer than every write: "the latest state"
LATEST = 1 << 62
_OFF_BUFFER = 1 << 20  # sync = "off": bytes of WAL kept in process before a write()
_MAX_FROZEN = 2  # frozen memtables waiting for a flush before writers wait
_CHUNK = 4096  # entries per writer call in the snapshot-aware paths

_value = itemgetter(1)


class _State:
    """What a reader needs, swapped as a whole: never mutated after publication
    (except ``mem``, which only writers under the engine lock change)."""

    __slots__ = ("imms", "mem", "runs")

    def __init__(self, mem: Memtable, imms: tuple[Memtable, ...], runs: tuple[Table, ...]):
        self.mem = mem
        self.imms = imms  # frozen memtables, newest first
        self.runs = runs  # sorted runs (one table each), newest first


def _read_runs(runs: tuple[Table, ...], key: bytes, seq: int) -> bytes | None:
    """The newest version of ``key`` visible at ``seq`` in ``runs`` (newest first).

    The key-range and bloom checks are inlined: they rule out most tables of a read.
    """
    h, mask = bloom_hash(key)
    for table in runs:
        if key > table.max_key or key < table.min_key:
            continue
        bloom = table.bloom
        if bloom is not None and bloom[h % table.bloom_words] & mask != mask:
            continue
        value = table.find(key, seq)
        if value is not MISS:
            return value  # type: ignore[no-any-return]
    return None


class _ClosedState:
    """Stands in for ``_State`` after close: any read fails loudly, tables are released."""

    @property
    def mem(self) -> Memtable:
        raise StorageError("the lsm engine is closed")

    imms = runs = mem


class _Writer:
    __slots__ = ("batch", "done", "durable", "error")

    def __init__(self, batch: dict[bytes, bytes | None] | None, durable: bool) -> None:
        self.batch = batch
        self.durable = durable
        self.done = False
        self.error: BaseException | None = None


class Settings:
    """The ``storage.lsm`` section, with defaults (see plugin.py for the declarations)."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        # a float is allowed from code (tests use kilobyte memtables to flush constantly)
        self.memtable_bytes = int(float(settings.get("memtable_mb", 32)) * (1 << 20))
        self.block_size = int(settings.get("block_kb", 4)) << 10
        self.bloom_bits = int(settings.get("bloom_bits_per_key", 10))
        self.codec = CODECS[str(settings.get("compression", "lz4"))]
        self.cache_bytes = int(settings.get("block_cache_mb", 64)) << 20
        self.trigger = max(2, int(settings.get("compaction_trigger", 4)))
        #: writers wait while this many runs exist (background merges are behind)
        self.stall_runs = 3 * self.trigger
        self.size_ratio = int(settings.get("size_ratio_pct", 10))
        self.max_space_amp = int(settings.get("max_space_amp_pct", 100))


class LsmEngine(StorageEngine):
    def __init__(self, path: Path, sync: str, settings: Settings) -> None:
        self._path = path
        self._sync = sync
        self._settings = settings
        self._cache = BlockCache(settings.cache_bytes) if settings.cache_bytes else None
        # reentrant: a snapshot's __del__ may release it from a GC pass inside a lock
        self._lock = threading.RLock()
        self._bg = threading.Condition(self._lock)  # background work and stalled writers
        self._queue: list[_Writer] = []
        self._queue_cond = threading.Condition(threading.Lock())
        self._seq = 0  # newest sequence number applied (visible to new snapshots)
        self._snapshots: dict[int, int] = {}  # seq -> open snapshots
        self._newest_snapshot = -1
        self._closed = False
        self._stopping = False
        self._error: BaseException | None = None  # a background failure stops writes
        self._compact_requested = False
        self._busy = False  # the background thread is running a job
        self._next_file = 1
        self._flushed_seq = 0
        self._wal_fd = -1
        self._wal_number = 0
        self._wal_buffer = bytearray()
        self._wal_syncs = 0
        self._counters = {"wal_bytes": 0, "flushed_bytes": 0, "compacted_bytes": 0}
        self._compactions = 0
        self._state: _State = _State(Memtable(0), (), ())
        self._thread: threading.Thread | None = None
        self.get = self._get_latest  # type: ignore[method-assign]  # no wrapper frame

    # -- opening ------------------------------------------------------------------------

    @classmethod
    def open(cls, options: StorageOptions) -> LsmEngine:
        if options.path is None:
            raise StorageError("the lsm engine needs a directory")
        engine = cls(Path(options.path), options.sync, Settings(options.settings))
        engine._recover()
        thread = threading.Thread(target=engine._background, name="alopex-lsm", daemon=True)
        engine._thread = thread
        thread.start()
        return engine

    def _recover(self) -> None:
        path = self._path
        path.mkdir(parents=True, exist_ok=True)
        facts = read_manifest(path)
        (path / MANIFEST_TMP).unlink(missing_ok=True)  # a replacement a crash cut short
        numbers = [int(p.stem) for p in path.glob("*.sst") if p.stem.isdigit()]
        wals = sorted(int(p.stem) for p in path.glob("*.wal") if p.stem.isdigit())
        if facts is None:
            if numbers:
                raise StorageCorruption(
                    f"{str(path)!r} holds table files but no MANIFEST (deleted?): without it "
                    "the live tables are unknown; restore it from a backup"
                )
            facts = {"next_file": 1, "last_seq": 0, "wal_min": 0, "runs": [], **self._counters}
            write_manifest(path, facts)
        self._counters = {k: int(facts.get(k, 0)) for k in self._counters}
        live = set(facts["runs"])
        for number in numbers:  # outputs of a flush or compaction a crash interrupted
            if number not in live:
                (path / table_name(number)).unlink(missing_ok=True)
        runs = tuple(Table(path / table_name(n), n, self._cache) for n in facts["runs"])
        self._flushed_seq = seq = int(facts["last_seq"])
        wal_min = int(facts["wal_min"])
        mem = Memtable(wal_min)
        replayed = [n for n in wals if n >= wal_min]
        for number in wals:
            if number < wal_min:  # its memtable is in a table already
                (path / wal_name(number)).unlink(missing_ok=True)
        for i, number in enumerate(replayed):
            last = i == len(replayed) - 1
            for record_seq, batch, nbytes in replay_wal(path / wal_name(number), last=last):
                if record_seq <= self._flushed_seq:
                    continue
                if record_seq != seq + 1:  # every commit takes the next number
                    raise StorageCorruption(
                        f"write-ahead log {str(path / wal_name(number))!r} continues at "
                        f"sequence {record_seq} but the last one found is {seq}: a WAL file "
                        "is missing and committed batches with it; restore from a backup"
                    )
                mem.apply(record_seq, batch, nbytes, -1)
                seq = record_seq
            fsync_path(path / wal_name(number))  # no longer the newest WAL: make it whole
        self._seq = seq
        self._next_file = max([int(facts["next_file"]), *numbers, *wals], default=0) + 1
        self._state = _State(mem, (), runs)
        self._open_wal()
        if mem.size >= self._settings.memtable_bytes:
            with self._lock:
                self._freeze_locked()

    def _new_number(self) -> int:
        number = self._next_file
        self._next_file += 1
        return number

    def _open_wal(self) -> None:
        """Start a new WAL file (under the engine lock, or before the engine is shared)."""
        self._wal_number = number = self._new_number()
        self._wal_fd = os.open(
            self._path / wal_name(number), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644
        )
        if self._sync == "full":
            fsync_path(self._path)  # a durable commit in it must not lose its directory entry

    # -- writing ------------------------------------------------------------------------

    def write(self, batch: WriteBatch, *, durable: bool) -> None:
        self.submit(batch, durable=durable)()

    def submit(self, batch: WriteBatch, *, durable: bool) -> Callable[[], None]:
        writer = _Writer(batch if type(batch) is dict else dict(batch), durable)
        self._enqueue(writer)
        return partial(self._wait, writer)

    def _wait(self, writer: _Writer) -> None:
        """Lead ``writer``'s group, or wait until another leader wrote it. An interrupt
        (KeyboardInterrupt) while queued does not abandon the batch -- the writers behind
        it would wait for ever -- and is raised once the batch is settled."""
        interrupted: BaseException | None = None
        while True:
            try:
                group = self._lead(writer)
                break
            except BaseException as err:
                interrupted = err
        if group is not None:
            try:
                self._commit_group(group)
            except BaseException as err:
                for member in group:
                    member.error = err
            finally:
                self._done(group)
        if writer.error is not None:
            raise writer.error
        if interrupted is not None:
            raise interrupted

    def _enqueue(self, writer: _Writer) -> None:
        with self._queue_cond:
            if self._closed:
                raise StorageError("the lsm engine is closed")
            self._queue.append(writer)

    def _lead(self, writer: _Writer) -> list[_Writer] | None:
        """Wait until queued ``writer`` heads the queue; return the group it leads, or None
        once another leader did its work. A ``batch`` of None (a flush) is always a group
        of its own. Every writer queued before this one is led first, in order."""
        cond = self._queue_cond
        with cond:
            queue = self._queue
            while not writer.done and queue[0] is not writer:
                cond.wait()
            if writer.done:
                return None
            if writer.batch is None:
                return [writer]
            group = []
            for member in queue:
                if member.batch is None:
                    break
                group.append(member)
            return group

    def _done(self, group: list[_Writer]) -> None:
        with self._queue_cond:
            del self._queue[: len(group)]
            for member in group:
                member.done = True
            self._queue_cond.notify_all()

    def _commit_group(self, group: list[_Writer]) -> None:
        """Log and apply ``group`` (run by the queue's leader, one at a time)."""
        if self._error is not None:
            raise StorageError(
                f"the lsm engine stopped writes after an error ({self._error!r}); "
                "reopen the database"
            )
        if self._behind():
            with self._bg:  # flushes or merges are behind: wait rather than pile up
                while self._behind() and self._error is None:
                    self._bg.wait(1.0)
        seq = self._seq
        records = []
        for member in group:
            seq += 1
            assert member.batch is not None
            records.append(encode_record(seq, member.batch))
        data = records[0] if len(records) == 1 else b"".join(records)
        try:
            if self._sync == "off":
                self._wal_buffer += data
                if len(self._wal_buffer) >= _OFF_BUFFER:
                    write_all(self._wal_fd, self._wal_buffer)
                    self._wal_buffer.clear()
            else:
                write_all(self._wal_fd, data)
                if self._sync == "full" and any(member.durable for member in group):
                    os.fdatasync(self._wal_fd)
                    self._wal_syncs += 1
            with self._lock:
                mem = self._state.mem
                keep = self._newest_snapshot
                seq = self._seq
                for member, record in zip(group, records, strict=True):
                    seq += 1
                    mem.apply(seq, member.batch, len(record), keep)  # type: ignore[arg-type]
                self._seq = seq
        except BaseException as err:
            # Records may now be half-written (a failed fsync cannot be retried either), or
            # written but not applied (an interrupt): appending after them would put
            # commits behind garbage or reuse their sequence numbers. Stop writing; a
            # reopen recovers exactly what the log holds.
            self._error = err
            if not isinstance(err, OSError):
                raise
            raise StorageError(
                f"writing the write-ahead log failed ({err}); this batch is not committed "
                "and the engine accepts no more writes until the database is reopened"
            ) from err
        if mem.size >= self._settings.memtable_bytes:
            with self._lock:
                self._freeze_locked()

    def _behind(self) -> bool:
        state = self._state
        return len(state.imms) >= _MAX_FROZEN or len(state.runs) >= self._settings.stall_runs

    def _freeze_locked(self) -> None:
        """Make the memtable immutable and start a new one with a new WAL file."""
        state = self._state
        mem = state.mem
        if not len(mem):
            return
        if self._wal_buffer:
            write_all(self._wal_fd, self._wal_buffer)
            self._wal_buffer.clear()
        # Whatever the sync mode: recovery accepts a torn tail only in the newest WAL,
        # so an older one must be whole (one fdatasync per memtable).
        os.fdatasync(self._wal_fd)
        os.close(self._wal_fd)
        self._open_wal()
        self._state = _State(Memtable(self._wal_number), (mem, *state.imms), state.runs)
        self._bg.notify_all()

    # -- reading ------------------------------------------------------------------------

    def _get_latest(self, key: bytes) -> bytes | None:
        state = self._state
        found = state.mem.latest.get(key)
        if found is not None:
            return found[1]
        for imm in state.imms:
            found = imm.latest.get(key)
            if found is not None:
                return found[1]
        return _read_runs(state.runs, key, LATEST) if state.runs else None

    def get(self, key: bytes) -> bytes | None:  # replaced per instance by _get_latest
        return self._get_latest(key)  # pragma: no cover

    def _get_at(self, seq: int, key: bytes) -> bytes | None:
        if self._closed:
            raise StorageError("snapshot is closed: its engine was closed")
        state = self._state
        value = state.mem.value_at(key, seq)
        if value is not MISS:
            return value  # type: ignore[no-any-return]
        for imm in state.imms:
            value = imm.value_at(key, seq)
            if value is not MISS:
                return value  # type: ignore[no-any-return]
        return _read_runs(state.runs, key, seq) if state.runs else None

    def multi_get(self, keys: Sequence[bytes]) -> list[bytes | None]:
        get = self._get_latest
        return [get(key) for key in keys]

    def _sources(
        self, state: _State, start: bytes, end: bytes | None, reverse: bool, seq: int
    ) -> list[Source]:
        """Every source of ``[start, end)`` in ``state``, oldest first."""
        sources: list[Source] = []
        for table in reversed(state.runs):
            if table.entries and table.max_key >= start and (end is None or table.min_key < end):
                sources.append(TableSource(table, start, end, reverse, seq))
        for imm in reversed(state.imms):
            # the lock serialises the lazy sort of its key index between scans
            sources.append(MemSource(imm, self._lock, start, end, reverse, seq))
        if len(state.mem):
            sources.append(MemSource(state.mem, self._lock, start, end, reverse, seq))
        return sources

    def scan(
        self, start: bytes = b"", end: bytes | None = None, *, reverse: bool = False
    ) -> Iterator[KeyValue]:
        with self._lock:
            if self._closed:
                raise StorageError("the lsm engine is closed")
            seq, state = self._seq, self._state
        if end is not None and end <= start:
            return iter(())
        if not len(state.mem):
            # Frozen memtables and tables never change: only the active memtable needs a
            # registered snapshot to keep the versions this scan sees, and it is empty
            # (what is written to it from now on is newer than ``seq``).
            return merge_pairs(self._sources(state, start, end, reverse, seq), reverse=reverse)
        return self._scan_registered(start, end, reverse)

    def _scan_registered(
        self, start: bytes, end: bytes | None, reverse: bool
    ) -> Iterator[KeyValue]:
        with self.snapshot() as snapshot:
            yield from snapshot.scan(start, end, reverse=reverse)

    def _scan_at(
        self, seq: int, start: bytes, end: bytes | None, reverse: bool
    ) -> Iterator[KeyValue]:
        if self._closed:
            raise StorageError("snapshot is closed: its engine was closed")
        if end is not None and end <= start:
            return iter(())
        return merge_pairs(self._sources(self._state, start, end, reverse, seq), reverse=reverse)

    # -- snapshots ----------------------------------------------------------------------

    def snapshot(self) -> LsmSnapshot:
        with self._lock:
            if self._closed:
                raise StorageError("the lsm engine is closed")
            seq = self._seq
            self._snapshots[seq] = self._snapshots.get(seq, 0) + 1
            self._newest_snapshot = max(self._newest_snapshot, seq)
        return LsmSnapshot(self, seq)

    def _release(self, seq: int) -> None:
        with self._lock:
            left = self._snapshots[seq] - 1
            if left:
                self._snapshots[seq] = left
                return
            del self._snapshots[seq]
            if seq == self._newest_snapshot:
                self._newest_snapshot = max(self._snapshots, default=-1)

    # -- background: flush and compaction -------------------------------------------------

    def _background(self) -> None:
        while True:
            with self._bg:
                while not self._stopping and not self._work_locked():
                    self._bg.wait()
                if self._stopping:
                    return
                self._busy = True
                state = self._state
                snapshots = sorted(self._snapshots)
                # A wanted merge goes before a flush unless writers already wait for
                # the flush: flushes alone would starve merges under a steady write load
                # and let runs (space) pile up.
                span = self._pick_locked(state.runs)
                job: Any
                if state.imms and (span is None or len(state.imms) >= _MAX_FROZEN):
                    job = ("flush", state.imms[-1])
                else:
                    job = ("compact", span)
                    self._compact_requested = False
            try:
                if job[0] == "flush":
                    self._flush_memtable(job[1], snapshots)
                elif job[1] is not None:
                    self._compact(job[1], snapshots)
            except BaseException as err:  # stop writes; reads and close keep working
                with self._bg:
                    self._error = err
                    self._bg.notify_all()
                warnings.warn(f"lsm background job failed: {err!r}", RuntimeWarning, 2)
                return
            finally:
                with self._bg:
                    self._busy = False
                    self._bg.notify_all()

    def _work_locked(self) -> bool:
        state = self._state
        if self._error is not None:
            return False
        return bool(state.imms) or self._pick_locked(state.runs) is not None

    def _pick_locked(self, runs: tuple[Table, ...]) -> tuple[int, int] | None:
        """Which runs ``[i, j)`` (newest first) to merge, size-tiered ("universal"):

        1. ``compact()`` asked for everything: all runs.
        Nothing else below ``compaction_trigger`` runs (so a bulk load is not merged while
        it is still being written), then:
        2. Space amplification: when the runs above the oldest hold more than
           ``max_space_amp_pct`` of the oldest run's bytes, merge everything.
        3. Size ratio: from the newest run, take runs while the next one is at most
           ``size_ratio_pct`` bigger than those taken so far; merge them if >= 2.
        4. Otherwise merge the newest runs until ``compaction_trigger - 1`` remain.
        """
        n = len(runs)
        if self._compact_requested:
            if n > 1 or (n == 1 and runs[0].tombstones):
                return 0, n
            self._compact_requested = False  # nothing to merge: compact() is done
            self._bg.notify_all()
            return None
        if n < self._settings.trigger:
            return None
        sizes = [t.size for t in runs]
        if sum(sizes[:-1]) * 100 > self._settings.max_space_amp * sizes[-1]:
            return 0, n
        total, j = sizes[0], 1
        while j < n and sizes[j] * 100 <= total * (100 + self._settings.size_ratio):
            total += sizes[j]
            j += 1
        if j >= 2:
            return 0, j
        return 0, n - self._settings.trigger + 2

    def _writer(self, has_seqs: bool) -> TableWriter:
        number = self._new_number()
        s = self._settings
        return TableWriter(
            self._path / table_name(number),
            block_size=s.block_size,
            codec=s.codec,
            bloom_bits=s.bloom_bits,
            has_seqs=has_seqs,
        )

    def _flush_memtable(self, mem: Memtable, snapshots: list[int]) -> None:
        keys = sorted(mem.latest)  # frozen: no lock, and no writer waits for this sort
        bottom = not self._state.runs
        old_versions_needed = bool(snapshots) and snapshots[0] < mem.last_seq
        writer = self._writer(has_seqs=old_versions_needed)
        try:
            if not old_versions_needed:
                latest = mem.latest
                values = list(map(_value, map(latest.__getitem__, keys)))
                if bottom and None in values:
                    live = [(k, v) for k, v in zip(keys, values, strict=True) if v is not None]
                    keys, values = [k for k, _ in live], [v for _, v in live]
                for i in range(0, len(keys), 1 << 16):
                    writer.add(keys[i : i + (1 << 16)], values[i : i + (1 << 16)])
            else:
                out_k: list[bytes] = []
                out_v: list[bytes | None] = []
                out_s: list[int] = []
                for key in keys:
                    for seq, value in keep_versions(list(mem.versions(key)), snapshots, bottom):
                        out_k.append(key)
                        out_v.append(value)
                        out_s.append(seq)
                    if len(out_k) >= _CHUNK:  # checked between keys: versions stay together
                        writer.add(out_k, out_v, out_s)
                        out_k, out_v, out_s = [], [], []
                writer.add(out_k, out_v, out_s)
            fault("flush-mid")
            facts = writer.finish()
        except BaseException:
            writer.abort()
            raise
        table = self._finished_table(writer, facts)
        with self._lock:
            state = self._state
            imms = state.imms[:-1]  # ``mem`` is the oldest frozen memtable
            runs = state.runs if table is None else (table, *state.runs)
            wal_min = (imms[-1] if imms else state.mem).wal_number
        self._counters["wal_bytes"] += mem.size
        self._counters["flushed_bytes"] += facts["size"] if table is not None else 0
        self._install(runs, last_seq=mem.last_seq, wal_min=wal_min)
        with self._lock:
            state = self._state
            self._state = _State(state.mem, state.imms[:-1], runs)
            self._flushed_seq = mem.last_seq
        for path in self._path.glob("*.wal"):
            if path.stem.isdigit() and int(path.stem) < wal_min:
                path.unlink(missing_ok=True)

    def _install(self, runs: tuple[Table, ...], *, last_seq: int, wal_min: int) -> None:
        """Record ``runs`` as the live tables in a new MANIFEST (background thread only)."""
        write_manifest(
            self._path,
            {
                "next_file": self._next_file,
                "last_seq": last_seq,
                "wal_min": wal_min,
                "runs": [t.number for t in runs],
                **self._counters,
            },
        )

    def _compact(self, span: tuple[int, int], snapshots: list[int]) -> None:
        i, j = span
        inputs = self._state.runs[i:j]
        bottom = j == len(self._state.runs)
        newest = max(t.max_seq for t in inputs)
        old_versions_needed = bool(snapshots) and snapshots[0] < newest
        writer = self._writer(has_seqs=old_versions_needed)
        try:
            if not old_versions_needed:
                sources: list[Source] = [
                    TableSource(t, b"", None, False, LATEST) for t in reversed(inputs)
                ]
                for keys, values in merge_chunks(sources, reverse=False, drop_tombstones=bottom):
                    writer.add(keys, values)
                    fault("compaction-mid")  # the output is half written
                    if self._stopping:
                        raise _Stopped
            else:
                out_k: list[bytes] = []
                out_v: list[bytes | None] = []
                out_s: list[int] = []
                for key, seq, value in merge_versions(inputs, snapshots, bottom):
                    # chunks end between keys: a key's versions must share one block
                    if len(out_k) >= _CHUNK and key != out_k[-1]:
                        writer.add(out_k, out_v, out_s)
                        out_k, out_v, out_s = [], [], []
                        fault("compaction-mid")
                        if self._stopping:
                            raise _Stopped
                    out_k.append(key)
                    out_v.append(value)
                    out_s.append(seq)
                writer.add(out_k, out_v, out_s)
            facts = writer.finish()
        except _Stopped:
            writer.abort()
            return
        except BaseException:
            writer.abort()
            raise
        output = self._finished_table(writer, facts)
        runs = self._state.runs
        new_runs = (*runs[:i], *((output,) if output else ()), *runs[j:])
        self._counters["compacted_bytes"] += facts["size"] if output else 0
        self._install(new_runs, last_seq=self._flushed_seq, wal_min=self._wal_min())
        with self._lock:
            state = self._state
            self._state = _State(state.mem, state.imms, new_runs)
            self._compactions += 1
        for table in inputs:  # readers holding them keep reading through their mapping
            table.path.unlink(missing_ok=True)

    def _finished_table(self, writer: TableWriter, facts: dict[str, Any]) -> Table | None:
        """The table a finished writer wrote, or None (and no file) if it has no entries."""
        if facts["entries"]:
            return Table(writer.path, int(writer.path.stem), self._cache)
        writer.path.unlink(missing_ok=True)
        return None

    def _wal_min(self) -> int:
        with self._lock:
            state = self._state
            return (state.imms[-1] if state.imms else state.mem).wal_number

    # -- lifecycle ----------------------------------------------------------------------

    def flush(self) -> None:
        """Write the memtable to a table file and wait until no flush is pending."""
        self._raise_background_error()
        # As a leader of the write queue: no batch is between its WAL write and its
        # memtable apply while the WAL file changes.
        marker = _Writer(None, False)
        self._enqueue(marker)
        if self._lead(marker) is not None:
            try:
                with self._lock:
                    self._freeze_locked()
            finally:
                self._done([marker])
        with self._bg:
            while self._state.imms and self._error is None and not self._stopping:
                self._bg.wait()
        self._raise_background_error()

    def compact(self) -> None:
        """Flush, then merge every run into one (drops every tombstone no snapshot needs)."""
        self.flush()
        with self._bg:
            self._compact_requested = True
            self._bg.notify_all()
            while (self._compact_requested or self._busy) and self._error is None:
                self._bg.wait()
        self._raise_background_error()

    def wait_idle(self) -> None:
        """Wait until no flush or compaction is pending or running."""
        with self._bg:
            while (self._busy or self._work_locked()) and not self._stopping:
                self._bg.wait()
        self._raise_background_error()

    def _raise_background_error(self) -> None:
        if self._error is not None:
            raise StorageError(f"the lsm engine stopped after a background error: {self._error}")

    def close(self) -> None:
        with self._queue_cond:
            if self._closed:
                return
            self._closed = True
            while self._queue:  # let the writers already queued finish
                self._queue_cond.wait()
        with self._bg:
            self._stopping = True
            self._bg.notify_all()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            if self._wal_buffer:
                write_all(self._wal_fd, self._wal_buffer)
                self._wal_buffer.clear()
            with contextlib.suppress(OSError):
                os.fsync(self._wal_fd)
            os.close(self._wal_fd)
            # drop the tables (their mappings close once no open scan holds them)
            self._state = _ClosedState()  # type: ignore[assignment]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            state = self._state
            open_snapshots = sum(self._snapshots.values())
        runs = state.runs
        table_bytes = sum(t.size for t in runs)
        levels = {
            f"L{i}": f"1 table {t.number:06d}: {t.size:,} bytes, {t.entries:,} entries, "
            f"{t.tombstones:,} tombstones"
            for i, t in enumerate(runs)
        }
        counters = dict(self._counters)
        counters["wal_bytes"] += state.mem.size + sum(m.size for m in state.imms)
        logged, flushed = counters["wal_bytes"], counters["flushed_bytes"]
        oldest = runs[-1].size if runs else 0
        cache = self._cache
        return {
            "engine": "lsm",
            "path": str(self._path),
            "compaction": "size-tiered (universal)",
            "sequence": self._seq,
            "memtable_bytes": state.mem.size,
            "memtable_keys": len(state.mem),
            "frozen_memtables": len(state.imms),
            "levels": levels or {"L0": "empty"},
            "tables": len(runs),
            "table_bytes": table_bytes,
            "entries": sum(t.entries for t in runs) + len(state.mem),
            "tombstones": sum(t.tombstones for t in runs),
            "wal_bytes_logged": logged,
            "table_bytes_flushed": counters["flushed_bytes"],
            "table_bytes_compacted": counters["compacted_bytes"],
            # table bytes written (flushes + merges) per table byte flushed; the WAL
            # writes the data once more, uncompressed
            "write_amplification": round((flushed + counters["compacted_bytes"]) / flushed, 2)
            if flushed
            else 0.0,
            # universal compaction's estimate: every newer run counted as overwrites of
            # the oldest (an upper bound; 1.0 right after a full merge)
            "space_amplification": round(table_bytes / oldest, 2) if oldest else 0.0,
            "compactions": self._compactions,
            "wal_syncs": self._wal_syncs,
            "open_snapshots": open_snapshots,
            "block_cache": "off"
            if cache is None
            else f"{cache.used:,}/{cache.capacity:,} bytes, {cache.hits:,} hits, "
            f"{cache.misses:,} misses",
        }


class _Stopped(Exception):
    """The engine is closing: abandon the compaction (its inputs stay live)."""


class LsmSnapshot(Snapshot):
    def __init__(self, engine: LsmEngine, seq: int) -> None:
        self._engine: LsmEngine | None = engine
        self._seq = seq
        self.get = partial(engine._get_at, seq)  # type: ignore[method-assign]  # no frame

    def get(self, key: bytes) -> bytes | None:  # replaced per instance
        raise StorageError("snapshot is closed")  # pragma: no cover

    def scan(
        self, start: bytes = b"", end: bytes | None = None, *, reverse: bool = False
    ) -> Iterator[KeyValue]:
        if self._engine is None:
            raise StorageError("snapshot is closed")
        return self._engine._scan_at(self._seq, start, end, reverse)

    def close(self) -> None:
        engine = self._engine
        if engine is not None:
            self._engine = None
            self.get = _closed_get  # type: ignore[method-assign]
            engine._release(self._seq)

    def __del__(self) -> None:
        self.close()


def _closed_get(key: bytes) -> bytes | None:
    raise StorageError("snapshot is closed")
