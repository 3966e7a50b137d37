"""The lsm engine passes the storage and transaction conformance suites: once with its
default settings, once with 256-byte memtables so that every test also runs through flushes,
table reads and compactions."""

from pathlib import Path

from alopex.contracts.storage import StorageEngine, StorageOptions
from alopex.testing import StorageSuite, TransactionSuite
from alopex_storage_lsm.engine import LsmEngine


class TestLsmStorage(StorageSuite):
    engine = "lsm"
    crash_rounds = 50


class TestLsmTransactions(TransactionSuite):
    engine = "lsm"


class TestLsmStorageFlushingConstantly(StorageSuite):
    engine = "lsm"

    def open(self, path: Path, sync: str = "full") -> StorageEngine:
        settings = {"memtable_mb": 1 / 4096, "compaction_trigger": 2, "block_kb": 1}
        return LsmEngine.open(StorageOptions(path, sync, settings))

    # the crash suite runs child processes with the configured engine: done above
    test_sigkill_leaves_exactly_a_committed_prefix = None  # type: ignore[assignment]
    test_sigkill_with_sync_off_keeps_a_prefix = None  # type: ignore[assignment]
