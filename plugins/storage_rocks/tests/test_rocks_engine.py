"""The rocks engine passes the storage and transaction conformance suites."""

from alopex.testing import StorageSuite, TransactionSuite


class TestRocksStorage(StorageSuite):
    engine = "rocks"


class TestRocksTransactions(TransactionSuite):
    engine = "rocks"
