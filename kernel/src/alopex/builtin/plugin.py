"""Hook implementations of the built-in plugins (only hookimpls live here)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alopex.contracts.storage import SYNC_MODES
from alopex.hookspecs import hookimpl
from alopex.registration import Backend, ConfigKey


@hookimpl
def alopex_storage_engines() -> Sequence[Backend[Any]]:
    from alopex.builtin.memory import MemoryEngine

    return [
        Backend(
            "memory", MemoryEngine.open, "in-process sorted dict; nothing persists", {"snapshots"}
        )
    ]


@hookimpl
def alopex_index_providers() -> Sequence[Backend[Any]]:
    from alopex.builtin.flat import FlatIndex

    return [Backend("flat", FlatIndex, "exact search by NumPy brute force", {"exact"})]


@hookimpl
def alopex_transaction_managers() -> Sequence[Backend[Any]]:
    from alopex.builtin.mvcc import MvccTransactionManager

    return [
        Backend(
            "mvcc",
            MvccTransactionManager.open,
            "snapshot isolation, optimistic, first committer wins",
        )
    ]


@hookimpl
def alopex_consensus_backends() -> Sequence[Backend[Any]]:
    from alopex.builtin.local import LocalConsensus

    return [Backend("local", LocalConsensus, "single node: commits apply at once")]


@hookimpl
def alopex_transports() -> Sequence[Backend[Any]]:
    from alopex.builtin.local import EmbeddedTransport

    return [Backend("embedded", EmbeddedTransport, "the database runs in this process")]


@hookimpl
def alopex_config_keys() -> Sequence[ConfigKey]:
    return [
        ConfigKey(
            "plugins",
            "autoload",
            bool,
            True,
            "load every installed plugin (else only those in 'allow')",
        ),
        ConfigKey(
            "plugins",
            "allow",
            list,
            [],
            "plugins to load; when set, only these (a broken one is fatal)",
        ),
        ConfigKey("plugins", "block", list, [], "plugins never to load"),
        ConfigKey(
            "storage", "engine", str, "rocks", "storage engine by name (see `alopex plugins`)"
        ),
        ConfigKey(
            "storage",
            "sync",
            str,
            "full",
            "durability: full (survives power loss), normal (survives a process "
            "crash), off (may lose recent commits in a crash)",
            SYNC_MODES,
        ),
        ConfigKey("transaction", "manager", str, "mvcc", "transaction manager by name"),
        ConfigKey(
            "sql",
            "column_mirror_rows",
            int,
            10_000,
            "tables whose scans or bulk inserts reach this many rows also keep a columnar "
            "copy in storage for fast cold scans (docs/sql.md#column-mirror); 0 turns it off",
        ),
        ConfigKey(
            "sql",
            "exact_filtered_rows",
            int,
            20_000,
            "a filtered vector top-k whose WHERE keeps at most this many rows ranks them "
            "exactly instead of searching the ANN index with an allow-set (docs/sql.md#vectors)",
        ),
        ConfigKey("consensus", "backend", str, "local", "consensus backend by name"),
        ConfigKey("transport", "name", str, "embedded", "transport by name"),
    ]
