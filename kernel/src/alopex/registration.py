"""Frozen records that plugins return from registration hooks.

A record names a backend and says how to build it; the kernel picks one by name from
config and calls its factory once, when a database opens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

import attrs

F = TypeVar("F", bound=Callable[..., Any])


def _capabilities(names: Iterable[str]) -> frozenset[str]:
    return frozenset(names)


def _normalize_name(name: str) -> str:
    return name.strip().lower().replace("_", "-")


@attrs.frozen
class Backend(Generic[F]):
    """One implementation of a subsystem contract (a storage engine, an index provider...).

    ``factory`` is called once per opened database; heavy imports belong inside it so that
    ``import alopex`` stays fast. ``capabilities`` are opt-in feature names that
    conformance suites and the planner look at (e.g. ``"persistent"``).
    """

    name: str = attrs.field(converter=_normalize_name)
    factory: F
    description: str = ""
    capabilities: frozenset[str] = attrs.field(default=frozenset(), converter=_capabilities)
    #: Filled in by the kernel: the plugin (entry-point name) that registered it.
    plugin: str = ""

    @name.validator
    def _check_name(self, _attribute: object, value: str) -> None:
        if not value:
            raise ValueError("a backend needs a non-empty name")


@attrs.frozen
class ConfigKey:
    """A setting a plugin accepts, e.g. ``ConfigKey("storage.rocks", "block_cache_mb", int, 64)``.

    ``section`` is the dotted TOML table (``[storage.rocks]``); the value in config must be
    of ``type`` (an ``int`` is accepted for ``float``) and, when ``choices`` is given, one
    of them.
    """

    section: str
    name: str
    type: type
    default: Any
    description: str
    choices: tuple[Any, ...] = ()

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.name}"
