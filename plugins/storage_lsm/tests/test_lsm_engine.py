"""The lsm engine passes the storage and transaction conformance suites."""

from alopex.testing import StorageSuite, TransactionSuite


class TestLsmStorage(StorageSuite):
    engine = "lsm"
    crash_rounds = 50


class TestLsmTransactions(TransactionSuite):
    engine = "lsm"
