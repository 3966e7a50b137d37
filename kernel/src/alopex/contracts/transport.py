"""The transport contract: how a connection reaches its database."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alopex.config import Settings
    from alopex.database import Database
    from alopex.plugins import PluginSet


class Transport(ABC):
    """Opens the database a target string names (a path, ``:memory:``, a URL...)."""

    @abstractmethod
    def open(self, target: str, settings: Settings, plugins: PluginSet) -> Database:
        """Return an open database; a second open of one target shares the first."""


TransportFactory = Callable[[], Transport]
