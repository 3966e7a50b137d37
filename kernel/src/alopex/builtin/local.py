"""Single-node defaults: the ``local`` consensus backend and the ``embedded`` transport."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from alopex.contracts.consensus import Consensus
from alopex.contracts.storage import StorageEngine, WriteBatch
from alopex.contracts.transport import Transport

if TYPE_CHECKING:
    from alopex.config import Settings
    from alopex.database import Database
    from alopex.plugins import PluginSet


class LocalConsensus(Consensus):
    """A group of one: every commit is agreed at once and written to local storage."""

    def __init__(self, engine: StorageEngine, settings: dict[str, Any] | None = None) -> None:
        self._write = engine.write
        self._submit = engine.submit

    def apply(self, batch: WriteBatch, *, durable: bool) -> None:
        self._write(batch, durable=durable)

    def submit(self, batch: WriteBatch, *, durable: bool) -> Callable[[], None]:
        return self._submit(batch, durable=durable)

    def status(self) -> dict[str, Any]:
        return {"backend": "local", "role": "leader", "members": 1}


class EmbeddedTransport(Transport):
    """Opens the database inside this process (shared by connections to the same path)."""

    def open(self, target: str, settings: Settings, plugins: PluginSet) -> Database:
        from alopex.database import Database

        return Database.acquire(target, settings, plugins)
