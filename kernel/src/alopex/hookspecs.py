"""Hook specifications: the whole contract between the kernel and its plugins.

Every hook is prefixed ``alopex_``. Registration hooks return a sequence of frozen
:class:`~alopex.registration.Backend` records; the kernel calls each hook once when it
assembles a plugin set, never per key, row or vector. A minimal plugin module::

    from alopex import hookimpl
    from alopex.registration import Backend

    @hookimpl
    def alopex_storage_engines():
        return [Backend("mystore", MyEngine.open, "my ordered key-value store",
                        {"persistent"})]

and in its ``pyproject.toml``::

    [project.entry-points.alopex]
    mystore = "my_package.plugin"
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from alopex.contracts.consensus import ConsensusFactory
    from alopex.contracts.index import IndexFactory
    from alopex.contracts.storage import StorageFactory
    from alopex.contracts.transaction import TransactionManagerFactory
    from alopex.contracts.transport import TransportFactory
    from alopex.registration import Backend, ConfigKey

PROJECT = "alopex"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# -------------------------------------------------------------------------------------
# storage
# -------------------------------------------------------------------------------------


@hookspec
def alopex_storage_engines() -> Sequence[Backend[StorageFactory]]:
    """Register ordered byte-key storage engines.

    Each factory takes :class:`~alopex.contracts.storage.StorageOptions` and returns an
    open :class:`~alopex.contracts.storage.StorageEngine`. Selected by ``storage.engine``.
    Declare ``"persistent"`` in capabilities if data survives ``close()`` and a crash.
    """


# -------------------------------------------------------------------------------------
# index
# -------------------------------------------------------------------------------------


@hookspec
def alopex_index_providers() -> Sequence[Backend[IndexFactory]]:
    """Register vector index providers (``flat``, ``hnsw``, ``faiss`` ...).

    Each factory takes :class:`~alopex.contracts.index.IndexOptions` and returns an empty
    :class:`~alopex.contracts.index.VectorIndex`. Selected by the index's ``provider``.
    """


# -------------------------------------------------------------------------------------
# transaction
# -------------------------------------------------------------------------------------


@hookspec
def alopex_transaction_managers() -> Sequence[Backend[TransactionManagerFactory]]:
    """Register transaction managers. Selected by ``transaction.manager``.

    Each factory takes the open storage engine, the consensus backend and the settings, and
    returns a :class:`~alopex.contracts.transaction.TransactionManager`.
    """


# -------------------------------------------------------------------------------------
# transport
# -------------------------------------------------------------------------------------


@hookspec
def alopex_transports() -> Sequence[Backend[TransportFactory]]:
    """Register transports: how a connection reaches a database. Selected by ``transport.name``.

    The built-in ``embedded`` transport opens the database in this process; a server
    plugin registers one that speaks to a remote node with the same semantics.
    """


# -------------------------------------------------------------------------------------
# consensus
# -------------------------------------------------------------------------------------


@hookspec
def alopex_consensus_backends() -> Sequence[Backend[ConsensusFactory]]:
    """Register consensus backends. Selected by ``consensus.backend``.

    Commits pass through the backend before they reach storage: the built-in ``local``
    backend applies them at once; a replicated one (Raft) applies them once a quorum agreed.
    """


# -------------------------------------------------------------------------------------
# configuration and command line
# -------------------------------------------------------------------------------------


@hookspec
def alopex_config_keys() -> Sequence[ConfigKey]:
    """Declare the settings this plugin reads (section, name, type, default, description).

    Config is validated against the union of declared keys: an undeclared key or a value
    of the wrong type is a :class:`~alopex.errors.ConfigError` before anything opens.
    """


@hookspec
def alopex_cli_commands() -> Sequence[click.Command]:
    """Add commands (``click.Command`` or ``click.Group``) to the ``alopex`` CLI."""
