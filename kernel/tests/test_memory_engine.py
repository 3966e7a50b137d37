"""The built-in memory engine passes the storage and transaction conformance suites."""

from alopex.testing import StorageSuite, TransactionSuite


class TestMemoryStorage(StorageSuite):
    engine = "memory"


class TestMemoryTransactions(TransactionSuite):
    engine = "memory"
