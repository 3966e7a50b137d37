"""A test plugin implementing every hook by wrapping the built-ins and recording calls."""

from __future__ import annotations

from typing import Any

import click

from alopex import hookimpl
from alopex.builtin.flat import FlatIndex
from alopex.builtin.local import EmbeddedTransport, LocalConsensus
from alopex.builtin.memory import MemoryEngine
from alopex.builtin.mvcc import MvccTransactionManager
from alopex.registration import Backend, ConfigKey

calls: dict[str, list[Any]] = {}


def record(kind: str, value: Any) -> None:
    calls.setdefault(kind, []).append(value)


class SpyConsensus(LocalConsensus):
    def submit(self, batch: Any, *, durable: bool) -> Any:
        record("consensus", dict(batch))
        return super().submit(batch, durable=durable)


class SpyManager(MvccTransactionManager):
    def begin(self, *, readonly: bool = False) -> Any:
        record("begin", readonly)
        return super().begin(readonly=readonly)


class SpyTransport(EmbeddedTransport):
    def open(self, target: str, settings: Any, plugins: Any) -> Any:
        record("transport", target)
        return super().open(target, settings, plugins)


def open_spy_store(options: Any) -> MemoryEngine:
    record("storage", options)
    return MemoryEngine.open(options)


@hookimpl
def alopex_storage_engines() -> list[Backend[Any]]:
    return [Backend("spystore", open_spy_store, "memory, but recorded")]


@hookimpl
def alopex_index_providers() -> list[Backend[Any]]:
    return [Backend("spyflat", FlatIndex, "the flat index under another name", {"exact"})]


@hookimpl
def alopex_transaction_managers() -> list[Backend[Any]]:
    return [Backend("spymvcc", SpyManager.open, "mvcc, but recorded")]


@hookimpl
def alopex_transports() -> list[Backend[Any]]:
    return [Backend("spytransport", SpyTransport, "embedded, but recorded")]


@hookimpl
def alopex_consensus_backends() -> list[Backend[Any]]:
    return [Backend("spyconsensus", SpyConsensus, "local, but recorded")]


@hookimpl
def alopex_config_keys() -> list[ConfigKey]:
    return [ConfigKey("storage.spystore", "label", str, "spy", "a label to check")]


@click.command("spy-hello")
@click.argument("name")
def spy_hello(name: str) -> None:
    """Say hello (added by the spy plugin)."""
    click.echo(f"hello {name} from a plugin")


@hookimpl
def alopex_cli_commands() -> list[click.Command]:
    return [spy_hello]
