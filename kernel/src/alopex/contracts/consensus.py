"""The consensus contract: how a commit becomes agreed before it is applied to storage."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alopex.contracts.storage import StorageEngine, WriteBatch


class Consensus(ABC):
    """Orders commits across replicas; a single node orders them alone."""

    @abstractmethod
    def apply(self, batch: WriteBatch, *, durable: bool) -> None:
        """Return once ``batch`` is committed by the group and applied to local storage.

        Called with the transaction manager's commit lock held, so batches arrive in
        commit order. Raises ``AlopexError`` if the group cannot commit it (then nothing
        of the batch is applied).
        """

    def close(self) -> None:
        """Leave the group and release resources."""

    def status(self) -> dict[str, Any]:
        """Role, term, members... for ``alopex info``."""
        return {}


ConsensusFactory = Callable[["StorageEngine", dict[str, Any]], Consensus]
