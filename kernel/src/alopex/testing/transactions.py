"""The transaction conformance suite: atomicity, snapshot isolation, first committer
wins, read-your-own-writes, read-only transactions, and concurrent workloads that must
never lose an update. Runs through the public API on a named storage engine."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest

import alopex
from alopex.testing._engines import is_persistent


def retry(
    db: alopex.Connection, work: Callable[[alopex.Transaction], None], attempts: int = 200
) -> int:
    """Run ``work`` in a transaction until it commits; return how many conflicts it met."""
    for conflicts in range(attempts):
        try:
            with db.transaction() as tx:
                work(tx)
            return conflicts
        except alopex.TransactionConflict as err:
            assert err.retryable
    raise AssertionError(f"no commit after {attempts} attempts")


class TransactionSuite:
    """Subclass with ``engine = "<name>"``."""

    engine: ClassVar[str]
    threads: ClassVar[int] = 4
    transfers_per_thread: ClassVar[int] = 150

    @pytest.fixture
    def db(self, tmp_path: Path) -> Iterator[alopex.Connection]:
        target = str(tmp_path / "db") if is_persistent(self.engine) else ":memory:"
        config = {"storage": {"engine": self.engine, "sync": "normal"}}
        with alopex.connect(target, config=config) as connection:
            yield connection

    # -- atomicity ------------------------------------------------------------------------

    def test_commit_applies_everything(self, db: alopex.Connection) -> None:
        with db.transaction() as tx:
            tx.put(b"a", b"1")
            tx.put(b"b", b"2")
            assert db.get(b"a") is None  # not visible before commit
        assert (db.get(b"a"), db.get(b"b")) == (b"1", b"2")

    def test_exception_rolls_back_and_propagates(self, db: alopex.Connection) -> None:
        db.put(b"a", b"0")
        with pytest.raises(ZeroDivisionError), db.transaction() as tx:
            tx.put(b"a", b"1")
            tx.delete(b"a")
            tx.put(b"b", b"2")
            1 / 0  # noqa: B018
        assert (db.get(b"a"), db.get(b"b")) == (b"0", None)

    def test_explicit_rollback_and_closed_transaction(self, db: alopex.Connection) -> None:
        tx = db.transaction()
        tx.put(b"a", b"1")
        tx.rollback()
        assert db.get(b"a") is None
        with pytest.raises(alopex.TransactionClosed):
            tx.put(b"a", b"2")
        with pytest.raises(alopex.TransactionClosed):
            tx.get(b"a")
        with pytest.raises(alopex.TransactionClosed):
            tx.commit()

    # -- visibility -----------------------------------------------------------------------

    def test_reads_its_own_writes(self, db: alopex.Connection) -> None:
        db.put(b"k1", b"old")
        db.put(b"k3", b"gone")
        with db.transaction() as tx:
            tx.put(b"k1", b"new")
            tx.put(b"k2", b"added")
            tx.delete(b"k3")
            assert tx.get(b"k1") == b"new"
            assert tx.get(b"k3") is None
            assert list(tx.scan()) == [(b"k1", b"new"), (b"k2", b"added")]
            assert list(tx.scan(reverse=True)) == [(b"k2", b"added"), (b"k1", b"new")]
            assert list(tx.scan(prefix=b"k2")) == [(b"k2", b"added")]
            assert list(tx.scan(b"k1", b"k2")) == [(b"k1", b"new")]

    def test_snapshot_isolation(self, db: alopex.Connection) -> None:
        db.put(b"x", b"1")
        reader = db.transaction()
        assert reader.get(b"x") == b"1"  # snapshot taken here
        db.put(b"x", b"2")
        db.put(b"y", b"new")
        assert reader.get(b"x") == b"1"
        assert reader.get(b"y") is None
        assert list(reader.scan()) == [(b"x", b"1")]
        reader.commit()
        assert db.get(b"x") == b"2"

    def test_first_committer_wins(self, db: alopex.Connection) -> None:
        db.put(b"x", b"0")
        t1, t2 = db.transaction(), db.transaction()
        assert t1.get(b"x") == t2.get(b"x") == b"0"
        t1.put(b"x", b"t1")
        t2.put(b"x", b"t2")
        t1.commit()
        with pytest.raises(alopex.TransactionConflict) as caught:
            t2.commit()
        assert caught.value.retryable
        assert db.get(b"x") == b"t1"

    def test_disjoint_writers_both_commit(self, db: alopex.Connection) -> None:
        t1, t2 = db.transaction(), db.transaction()
        t1.get(b"a")
        t2.get(b"b")
        t1.put(b"a", b"1")
        t2.put(b"b", b"2")
        t1.commit()
        t2.commit()
        assert (db.get(b"a"), db.get(b"b")) == (b"1", b"2")

    def test_autocommit_write_conflicts_with_open_transaction(self, db: alopex.Connection) -> None:
        tx = db.transaction()
        tx.get(b"x")
        tx.put(b"x", b"tx")
        db.put(b"x", b"autocommit")
        with pytest.raises(alopex.TransactionConflict):
            tx.commit()
        assert db.get(b"x") == b"autocommit"

    def test_read_only_transaction(self, db: alopex.Connection) -> None:
        db.put(b"a", b"1")
        with db.transaction(readonly=True) as tx:
            assert tx.readonly
            assert tx.get(b"a") == b"1"
            db.put(b"a", b"2")
            assert tx.get(b"a") == b"1"
            with pytest.raises(alopex.ReadOnlyTransaction):
                tx.put(b"a", b"3")
            with pytest.raises(alopex.ReadOnlyTransaction):
                tx.delete(b"a")
        assert db.get(b"a") == b"2"

    # -- write skew -----------------------------------------------------------------------

    def test_write_skew_is_allowed_under_snapshot_isolation(self, db: alopex.Connection) -> None:
        """Two doctors on call; each checks that the other is on call and leaves.

        Snapshot isolation lets both commit (documented in docs/architecture.md).
        """
        db.put(b"oncall/alice", b"1")
        db.put(b"oncall/bob", b"1")
        t1, t2 = db.transaction(), db.transaction()
        assert len(list(t1.scan(prefix=b"oncall/"))) == 2
        assert len(list(t2.scan(prefix=b"oncall/"))) == 2
        t1.delete(b"oncall/alice")
        t2.delete(b"oncall/bob")
        t1.commit()
        t2.commit()
        assert list(db.scan(prefix=b"oncall/")) == []

    def test_for_update_reads_prevent_write_skew(self, db: alopex.Connection) -> None:
        db.put(b"oncall/alice", b"1")
        db.put(b"oncall/bob", b"1")
        t1, t2 = db.transaction(), db.transaction()
        assert t1.get(b"oncall/bob", for_update=True) == b"1"
        assert t2.get(b"oncall/alice", for_update=True) == b"1"
        t1.delete(b"oncall/alice")
        t2.delete(b"oncall/bob")
        t1.commit()
        with pytest.raises(alopex.TransactionConflict):
            t2.commit()
        assert db.get(b"oncall/bob") == b"1"

    # -- concurrency ----------------------------------------------------------------------

    def _run_threads(self, work: Callable[[int], None]) -> None:
        errors: list[BaseException] = []

        def guarded(n: int) -> None:
            try:
                work(n)
            except BaseException as err:  # pragma: no cover - reported below
                errors.append(err)

        threads = [threading.Thread(target=guarded, args=(n,)) for n in range(self.threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors

    def test_bank_transfers_keep_the_total(self, db: alopex.Connection) -> None:
        accounts = 10
        with db.transaction() as tx:
            for n in range(accounts):
                tx.put(b"acct/%02d" % n, b"1000")
        conflicts = [0] * self.threads

        def transfers(n: int) -> None:
            rng = random.Random(n)
            for _ in range(self.transfers_per_thread):
                src, dst = rng.sample(range(accounts), 2)
                amount = rng.randrange(1, 50)

                def move(
                    tx: alopex.Transaction, src: int = src, dst: int = dst, amount: int = amount
                ) -> None:
                    a = int(tx.get(b"acct/%02d" % src) or b"0")
                    b = int(tx.get(b"acct/%02d" % dst) or b"0")
                    tx.put(b"acct/%02d" % src, b"%d" % (a - amount))
                    tx.put(b"acct/%02d" % dst, b"%d" % (b + amount))

                conflicts[n] += retry(db, move)

        # Every snapshot taken while transfers commit holds the total (commits are
        # applied whole and in order, even when storage groups them).
        audits: list[int] = []
        stop = threading.Event()

        def audit() -> None:
            while not stop.is_set():
                with db.transaction(readonly=True) as tx:
                    audits.append(sum(int(v) for _, v in tx.scan(prefix=b"acct/")))

        auditor = threading.Thread(target=audit)
        auditor.start()
        try:
            self._run_threads(transfers)
        finally:
            stop.set()
            auditor.join()
        assert audits and set(audits) == {accounts * 1000}
        balances = [int(v) for _, v in db.scan(prefix=b"acct/")]
        assert len(balances) == accounts
        assert sum(balances) == accounts * 1000
        # In one snapshot, too:
        with db.transaction(readonly=True) as tx:
            assert sum(int(v) for _, v in tx.scan(prefix=b"acct/")) == accounts * 1000

    def test_concurrent_increments_lose_no_update(self, db: alopex.Connection) -> None:
        per_thread = 100

        def increments(n: int) -> None:
            for _ in range(per_thread):

                def bump(tx: alopex.Transaction) -> None:
                    tx.put(b"counter", b"%d" % (int(tx.get(b"counter") or b"0") + 1))

                retry(db, bump)

        self._run_threads(increments)
        assert db.get(b"counter") == b"%d" % (self.threads * per_thread)

    # -- the key-value API ----------------------------------------------------------------

    def test_autocommit_kv_api(self, db: alopex.Connection) -> None:
        db.put(b"b", b"2")
        db.put(b"a", b"1")
        db.put(b"c", b"3")
        db.delete(b"b")
        db.delete(b"missing")
        assert db.get(b"a") == b"1" and db.get(b"b") is None
        assert list(db.scan()) == [(b"a", b"1"), (b"c", b"3")]
        assert list(db.scan(reverse=True)) == [(b"c", b"3"), (b"a", b"1")]
        assert list(db.scan(b"b")) == [(b"c", b"3")]
        assert list(db.scan(end=b"b")) == [(b"a", b"1")]

    def test_kv_keys_are_bytes(self, db: alopex.Connection) -> None:
        with pytest.raises(alopex.InvalidArgument, match="encode"):
            db.put("text", b"v")  # type: ignore[arg-type]
        with pytest.raises(alopex.InvalidArgument):
            db.put(b"k", 5)  # type: ignore[arg-type]
        with pytest.raises(alopex.InvalidArgument):
            db.get(None)  # type: ignore[arg-type]
        with pytest.raises(TypeError):  # InvalidArgument is also a TypeError
            list(db.scan(prefix="p"))  # type: ignore[arg-type]
