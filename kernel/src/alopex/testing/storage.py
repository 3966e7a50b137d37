"""The storage conformance suite: ordering, ranges, batches, snapshots, big values,
a hypothesis state machine against a dict model, and the SIGKILL crash test."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from alopex.contracts.storage import StorageEngine, prefix_end
from alopex.testing._engines import is_persistent, open_engine
from alopex.testing.crash import run_crash_rounds
from alopex.testing.model import storage_machine

#: keys whose byte order trips naive comparisons: empty, NUL and 0xFF runs, prefixes
AWKWARD_KEYS = [
    b"",
    b"\x00",
    b"\x00\x00",
    b"\x00\x01",
    b"\x00\xff",
    b"\x01",
    b"\x7f",
    b"\x80",
    b"a",
    b"a\x00",
    b"a\xff",
    b"ab",
    b"b",
    b"\xfe\xff",
    b"\xff",
    b"\xff\x00",
    b"\xff\xff",
    b"\xff\xff\xff",
]


class StorageSuite:
    """Subclass with ``engine = "<name>"``; every test opens the engine by that name."""

    engine: ClassVar[str]
    crash_rounds: ClassVar[int] = 20
    #: hypothesis examples for the state machine
    machine_examples: ClassVar[int] = 60

    def open(self, path: Path, sync: str = "full") -> StorageEngine:
        return open_engine(self.engine, path, sync)

    def require_persistent(self) -> None:
        if not is_persistent(self.engine):
            pytest.skip(f"engine {self.engine!r} does not declare the 'persistent' capability")

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[StorageEngine]:
        engine = self.open(tmp_path / "store")
        yield engine
        engine.close()

    # -- point operations -----------------------------------------------------------------

    def test_get_missing_is_none(self, store: StorageEngine) -> None:
        assert store.get(b"nope") is None
        assert store.multi_get([b"a", b"b"]) == [None, None]

    def test_put_overwrite_delete(self, store: StorageEngine) -> None:
        store.write({b"k": b"1"}, durable=True)
        assert store.get(b"k") == b"1"
        store.write({b"k": b"2"}, durable=False)
        assert store.get(b"k") == b"2"
        store.write({b"k": None}, durable=True)
        assert store.get(b"k") is None
        store.write({b"k": None}, durable=True)  # deleting an absent key is fine

    def test_empty_key_and_empty_value(self, store: StorageEngine) -> None:
        store.write({b"": b"empty key", b"empty value": b""}, durable=True)
        assert store.get(b"") == b"empty key"
        assert store.get(b"empty value") == b""
        assert list(store.scan()) == [(b"", b"empty key"), (b"empty value", b"")]

    def test_multi_get_keeps_order(self, store: StorageEngine) -> None:
        store.write({b"a": b"1", b"c": b"3"}, durable=True)
        assert store.multi_get([b"c", b"b", b"a", b"c"]) == [b"3", None, b"1", b"3"]

    def test_batch_applies_puts_and_deletes_together(self, store: StorageEngine) -> None:
        store.write({b"a": b"1", b"b": b"2", b"c": b"3"}, durable=True)
        store.write({b"a": None, b"b": b"two", b"d": b"4"}, durable=True)
        assert list(store.scan()) == [(b"b", b"two"), (b"c", b"3"), (b"d", b"4")]

    def test_values_of_16_mib(self, store: StorageEngine) -> None:
        big = random.Random(7).randbytes(16 << 20)
        store.write({b"big": big, b"small": b"s"}, durable=True)
        assert store.get(b"big") == big
        assert [k for k, _ in store.scan()] == [b"big", b"small"]
        store.write({b"big": big[::-1]}, durable=True)
        assert store.get(b"big") == big[::-1]

    # -- ordering and ranges --------------------------------------------------------------

    def test_orders_arbitrary_bytes(self, store: StorageEngine) -> None:
        rng = random.Random(1)
        keys = set(AWKWARD_KEYS) | {rng.randbytes(rng.randrange(0, 12)) for _ in range(300)}
        store.write({k: k[::-1] for k in keys}, durable=True)
        assert [k for k, _ in store.scan()] == sorted(keys)
        assert [k for k, _ in store.scan(reverse=True)] == sorted(keys, reverse=True)
        assert all(v == k[::-1] for k, v in store.scan())

    def test_range_is_half_open_both_directions(self, store: StorageEngine) -> None:
        keys = sorted(AWKWARD_KEYS)
        store.write(dict.fromkeys(keys, b"v"), durable=True)
        probes = [*keys, b"\x00\x00\x00", b"a\x00\x00", b"zzz", b"\xff\xff\xff\xff"]
        for start in probes:
            for end in [None, *probes]:
                expected = [k for k in keys if k >= start and (end is None or k < end)]
                assert [k for k, _ in store.scan(start, end)] == expected, (start, end)
                assert [k for k, _ in store.scan(start, end, reverse=True)] == expected[::-1]

    def test_prefix_scans(self, store: StorageEngine) -> None:
        keys = sorted(AWKWARD_KEYS)
        store.write(dict.fromkeys(keys, b"v"), durable=True)
        for prefix in [b"", b"\x00", b"a", b"\xff", b"\xff\xff", b"\xfe", b"nope"]:
            expected = [k for k in keys if k.startswith(prefix)]
            assert [k for k, _ in store.scan_prefix(prefix)] == expected, prefix
            assert [k for k, _ in store.scan_prefix(prefix, reverse=True)] == expected[::-1]

    def test_prefix_end(self) -> None:
        assert prefix_end(b"a") == b"b"
        assert prefix_end(b"a\xff") == b"b"
        assert prefix_end(b"\xff\xff") is None
        assert prefix_end(b"") is None

    def test_scan_sees_one_state_while_writes_continue(self, store: StorageEngine) -> None:
        store.write({b"%04d" % i: b"old" for i in range(2000)}, durable=True)
        pairs = store.scan()
        first = [next(pairs) for _ in range(10)]
        store.write({b"%04d" % i: (b"new" if i % 2 else None) for i in range(2000)}, durable=True)
        rest = list(pairs)
        assert len(first) + len(rest) == 2000
        assert {v for _, v in first + rest} == {b"old"}

    # -- snapshots ------------------------------------------------------------------------

    def test_snapshot_ignores_later_writes(self, store: StorageEngine) -> None:
        store.write({b"a": b"1", b"b": b"2", b"c": b"3"}, durable=True)
        snapshot = store.snapshot()
        store.write({b"a": None, b"b": b"two", b"d": b"4"}, durable=True)
        assert snapshot.get(b"a") == b"1"
        assert snapshot.get(b"b") == b"2"
        assert snapshot.get(b"d") is None
        assert snapshot.multi_get([b"a", b"d"]) == [b"1", None]
        assert list(snapshot.scan()) == [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]
        assert next(iter(snapshot.scan(reverse=True))) == (b"c", b"3")
        assert list(snapshot.scan_prefix(b"b")) == [(b"b", b"2")]
        assert list(store.scan()) == [(b"b", b"two"), (b"c", b"3"), (b"d", b"4")]
        snapshot.close()

    def test_many_snapshots_each_keep_their_state(self, store: StorageEngine) -> None:
        snapshots = []
        for i in range(20):
            store.write({b"counter": b"%d" % i, b"k%02d" % i: b"x"}, durable=True)
            snapshots.append(store.snapshot())
            if i % 3 == 0:
                store.write({b"k%02d" % i: None}, durable=True)
        for i, snapshot in enumerate(snapshots):
            assert snapshot.get(b"counter") == b"%d" % i
            assert len(list(snapshot.scan_prefix(b"k"))) == i + 1 - sum(
                1 for j in range(i) if j % 3 == 0
            )
        for snapshot in snapshots[::2]:
            snapshot.close()
        assert snapshots[1].get(b"counter") == b"1"
        for snapshot in snapshots[1::2]:
            snapshot.close()
        assert store.get(b"counter") == b"19"

    def test_concurrent_writers_and_snapshot_readers(self, store: StorageEngine) -> None:
        errors: list[BaseException] = []

        def writer(n: int) -> None:
            try:
                for i in range(300):
                    store.write({b"w%d" % n: b"%d" % i, b"sum%d" % n: b"%d" % i}, durable=False)
            except BaseException as err:  # pragma: no cover - reported below
                errors.append(err)

        def reader() -> None:
            try:
                for _ in range(200):
                    with store.snapshot() as snap:
                        for n in range(3):
                            assert snap.get(b"w%d" % n) == snap.get(b"sum%d" % n)
            except BaseException as err:  # pragma: no cover - reported below
                errors.append(err)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
        threads += [threading.Thread(target=reader) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors

    # -- lifecycle ------------------------------------------------------------------------

    def test_flush_and_stats(self, store: StorageEngine) -> None:
        store.write({b"a": b"1"}, durable=True)
        store.flush()
        stats = store.stats()
        assert isinstance(stats, dict) and stats

    def test_reopen_keeps_data(self, tmp_path: Path) -> None:
        self.require_persistent()
        engine = self.open(tmp_path / "store")
        engine.write({k: k for k in AWKWARD_KEYS}, durable=True)
        engine.write({b"a": None}, durable=False)
        engine.close()
        engine = self.open(tmp_path / "store")
        try:
            expected = sorted(set(AWKWARD_KEYS) - {b"a"})
            assert [k for k, _ in engine.scan()] == expected
        finally:
            engine.close()

    # -- model checking and crashes -------------------------------------------------------

    def test_state_machine_matches_dict_model(self, tmp_path: Path) -> None:
        machine = storage_machine(self.open, tmp_path, is_persistent(self.engine))
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=self.machine_examples, stateful_step_count=40, deadline=None
            ),
        )

    @pytest.mark.parametrize("sync", ["full", "normal"])
    def test_sigkill_leaves_exactly_a_committed_prefix(self, tmp_path: Path, sync: str) -> None:
        self.require_persistent()
        run_crash_rounds(self.engine, tmp_path / "db", sync=sync, rounds=self.crash_rounds)

    def test_sigkill_with_sync_off_keeps_a_prefix(self, tmp_path: Path) -> None:
        self.require_persistent()
        run_crash_rounds(self.engine, tmp_path / "db", sync="off", rounds=5, acked_durable=False)
