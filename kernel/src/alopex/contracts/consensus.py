"""The consensus contract: how a commit becomes agreed before it is applied to storage."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from alopex.contracts.storage import already_done

if TYPE_CHECKING:
    from alopex.contracts.storage import StorageEngine, WriteBatch


class Consensus(ABC):
    """Orders commits across replicas; a single node orders them alone."""

    @abstractmethod
    def apply(self, batch: WriteBatch, *, durable: bool) -> None:
        """Return once ``batch`` is committed by the group and applied to local storage.

        Called in commit order (``submit`` is the two-step form the transaction manager
        uses). Raises ``AlopexError`` if the group cannot commit it (then nothing
        of the batch is applied).
        """

    def submit(self, batch: WriteBatch, *, durable: bool) -> Callable[[], None]:
        """``apply`` in two steps: queue ``batch`` in commit order, then wait for it.

        Called under the commit lock; the returned waiter is called once, outside it, and
        returns or raises as ``apply`` would (see ``StorageEngine.submit``). The default
        applies at once.
        """
        self.apply(batch, durable=durable)
        return already_done

    def close(self) -> None:
        """Leave the group and release resources."""

    def status(self) -> dict[str, Any]:
        """Role, term, members... for ``alopex info``."""
        return {}


ConsensusFactory = Callable[["StorageEngine", dict[str, Any]], Consensus]
