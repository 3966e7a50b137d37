"""The transaction contract: snapshot reads, buffered writes, validated commits."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alopex.contracts.consensus import Consensus
    from alopex.contracts.storage import KeyValue, StorageEngine


#: reads latest committed values -> writes to add to the commit
Derive = Callable[[Callable[[bytes], "bytes | None"]], Mapping[bytes, "bytes | None"]]


class Transaction(ABC):
    """A unit of work on raw storage keys. Upper layers (KV, SQL) own key namespaces."""

    readonly: bool

    @abstractmethod
    def read(self, key: bytes) -> bytes | None:
        """Value as of this transaction's snapshot, overlaid with its own writes."""

    @abstractmethod
    def read_range(
        self, start: bytes, end: bytes | None, *, reverse: bool = False
    ) -> Iterator[KeyValue]:
        """Snapshot range merged with this transaction's own writes."""

    @abstractmethod
    def write(self, key: bytes, value: bytes | None) -> None:
        """Buffer a put (or a delete when ``value`` is None) until commit."""

    @abstractmethod
    def commit(self) -> None:
        """Validate and apply atomically; raises ``TransactionConflict`` if it lost a race."""

    @abstractmethod
    def rollback(self) -> None:
        """Discard every buffered write."""

    @abstractmethod
    def derive_on_commit(self, derive: Derive) -> None:
        """Have the commit call ``derive`` once it has validated, while commits are still
        serialised; the writes it returns join the commit's batch unchecked for conflicts.
        ``derive`` reads the latest committed values, so derived data (markers, columnar
        copies) can build on exactly the state this commit lands on."""


class TransactionManager(ABC):
    """Hands out transactions and serialises their commits."""

    @abstractmethod
    def begin(self, *, readonly: bool = False) -> Transaction:
        """Start a transaction; its snapshot is taken at its first read."""

    @abstractmethod
    def apply(self, batch: Mapping[bytes, bytes | None]) -> None:
        """Commit a batch outside any explicit transaction (autocommit writes)."""

    @abstractmethod
    def apply_if(
        self, key: bytes, expected: bytes | None, batch: Mapping[bytes, bytes | None]
    ) -> bool:
        """Commit ``batch`` only if ``key``'s latest committed value is ``expected``
        (compare-and-set); False if it changed. Writers of derived data use it to store
        what they computed from a snapshot only while that snapshot is still current."""

    @abstractmethod
    def close(self) -> None:
        """Refuse new work; called before storage closes."""


TransactionManagerFactory = Callable[
    ["StorageEngine", "Consensus", dict[str, Any]], TransactionManager
]
