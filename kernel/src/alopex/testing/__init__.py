"""Conformance suites that every plugin runs from its own test file.

A backend's conformance file is a few lines::

    from alopex.testing import IndexSuite, StorageSuite, TransactionSuite

    class TestMyStorage(StorageSuite):
        engine = "mystore"

    class TestMyTransactions(TransactionSuite):
        engine = "mystore"

    class TestMyIndex(IndexSuite):
        provider = "myindex"

Suites read the backend's declared capabilities; a test that needs one the backend lacks
is skipped with the reason, never silently.
"""

from __future__ import annotations

from alopex.testing.index import IndexSuite
from alopex.testing.storage import StorageSuite
from alopex.testing.transactions import TransactionSuite

__all__ = ["IndexSuite", "StorageSuite", "TransactionSuite"]
