"""Plugin manager facade: discover, filter and load plugins; select backends by name.

The rest of the kernel never touches ``pm.hook``: it asks a :class:`PluginSet` for the
backend a setting names, once, when a database opens.
"""

from __future__ import annotations

import difflib
import importlib
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from functools import cached_property
from importlib import metadata
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from alopex import hookspecs
from alopex.errors import PluginConflict, PluginError, PluginNotFound, PluginWarning
from alopex.registration import Backend, ConfigKey

if TYPE_CHECKING:
    import click

    from alopex.contracts.consensus import ConsensusFactory
    from alopex.contracts.index import IndexFactory
    from alopex.contracts.storage import StorageFactory
    from alopex.contracts.transaction import TransactionManagerFactory
    from alopex.contracts.transport import TransportFactory

ENTRY_POINT_GROUP = "alopex"
BUILTIN = "builtin"

#: backend name -> the extra of the ``alopex`` meta-distribution that installs it
KNOWN_EXTRAS = {
    "rocks": "rocks",
    "lsm": "lsm",
    "hnsw": "hnsw",
    "hnswlib": "hnsw",
    "faiss": "faiss",
    "raft": "raft",
    "chirps": "chirps",
    "http": "server",
    "flight": "server",
}

#: PluginSet property -> what ``alopex plugins`` calls that kind
KINDS = {
    "storage_engines": "storage",
    "index_providers": "index",
    "transaction_managers": "transaction",
    "transports": "transport",
    "consensus_backends": "consensus",
}

_TRUE = {"1", "true", "yes", "on"}


@attrs.frozen
class PluginInfo:
    """A loaded plugin: where it came from and what it registered."""

    name: str
    distribution: str
    version: str
    module: str


@attrs.frozen
class PluginPolicy:
    """Which entry points to load: all but ``block`` (autoload), or exactly ``allow``."""

    autoload: bool = True
    allow: tuple[str, ...] = ()
    block: tuple[str, ...] = ()

    @classmethod
    def from_settings(
        cls, section: Mapping[str, Any], environ: Mapping[str, str] = os.environ
    ) -> PluginPolicy:
        """Combine the ``[plugins]`` config table with ``ALOPEX_PLUGINS`` and
        ``ALOPEX_DISABLE_PLUGIN_AUTOLOAD`` (the environment adds to config)."""
        allow = list(section.get("allow", ()))
        allow += [n.strip() for n in environ.get("ALOPEX_PLUGINS", "").split(",") if n.strip()]
        autoload = bool(section.get("autoload", True))
        if environ.get("ALOPEX_DISABLE_PLUGIN_AUTOLOAD", "").strip().lower() in _TRUE:
            autoload = False
        return cls(autoload, tuple(dict.fromkeys(allow)), tuple(section.get("block", ())))


class PluginSet:
    """The plugins loaded under one policy, with one typed method per hook."""

    def __init__(
        self,
        pm: pluggy.PluginManager,
        infos: dict[str, PluginInfo],
        failed: dict[str, BaseException],
    ) -> None:
        self._pm = pm
        self.infos = infos
        #: autoloaded plugins that raised while loading (skipped with a warning)
        self.failed = failed

    # -- loading ------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        policy: PluginPolicy = PluginPolicy(),
        entry_points: Callable[[], Iterable[metadata.EntryPoint]] | None = None,
    ) -> PluginSet:
        """Register the built-ins, then the entry points ``policy`` admits.

        A broken autoloaded plugin is a :class:`PluginWarning` and is skipped; a broken
        plugin named in ``policy.allow`` is fatal, with the cause chained.
        """
        from alopex.builtin import plugin as builtin_plugin

        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        kernel = metadata.version("alopex-kernel") if _installed("alopex-kernel") else "dev"
        pm.register(builtin_plugin, name=BUILTIN)
        infos = {BUILTIN: PluginInfo(BUILTIN, "alopex-kernel", kernel, builtin_plugin.__name__)}
        failed: dict[str, BaseException] = {}
        found = {ep.name: ep for ep in (entry_points or _alopex_entry_points)()}
        wanted = [n for n in policy.allow if n not in policy.block]

        for name, ep in found.items():
            if name in policy.block:
                continue
            named = name in wanted
            if not named and (policy.allow or not policy.autoload):
                continue
            dist = ep.dist.name if ep.dist else "?"
            try:
                module = ep.load()
                cls._register(pm, module, name, dist, infos)
            except Exception as err:
                if named:
                    raise PluginError(
                        f"plugin {name!r} (distribution {dist}) is named in config but "
                        f"failed to load: {err}"
                    ) from err
                warnings.warn(
                    f"skipping plugin {name!r} (distribution {dist}): it failed to load: "
                    f"{err!r}. Block it with ALOPEX_PLUGINS/[plugins] block or fix it.",
                    PluginWarning,
                    stacklevel=2,
                )
                failed[name] = err
                continue
            infos[name] = PluginInfo(
                name, dist, ep.dist.version if ep.dist else "?", getattr(module, "__name__", "?")
            )

        for name in wanted:
            if name not in found:
                cls._load_module(pm, name, infos, sorted(found))
        return cls(pm, infos, failed)

    @staticmethod
    def _register(
        pm: pluggy.PluginManager,
        module: object,
        name: str,
        dist: str,
        infos: Mapping[str, PluginInfo],
    ) -> None:
        if name in infos:
            raise PluginConflict(
                f"two plugins are named {name!r}: distributions {infos[name].distribution} "
                f"and {dist}; uninstall one of them"
            )
        pm.register(module, name=name)

    @classmethod
    def _load_module(
        cls, pm: pluggy.PluginManager, name: str, infos: dict[str, PluginInfo], installed: list[str]
    ) -> None:
        """An allow-list name that is no entry point may be an importable module path."""
        try:
            module = importlib.import_module(name)
        except ImportError as err:
            raise PluginNotFound(
                f"plugin {name!r} is named in config but is not installed "
                f"(installed plugins: {', '.join(installed) or 'none'})" + _install_hint(name)
            ) from err
        except Exception as err:
            raise PluginError(
                f"plugin module {name!r} named in config failed to load: {err}"
            ) from err
        cls._register(pm, module, name, "(module)", infos)
        infos[name] = PluginInfo(name, "(module)", "", module.__name__)

    # -- backends -----------------------------------------------------------------------

    def _backends(self, hook: str) -> dict[str, Backend[Any]]:
        found: dict[str, Backend[Any]] = {}
        # Call each implementation ourselves so every record can carry its plugin's name.
        for impl in reversed(getattr(self._pm.hook, hook).get_hookimpls()):
            for registered in impl.function() or ():
                record = attrs.evolve(registered, plugin=impl.plugin_name)
                if record.name in found:
                    first = self.infos[found[record.name].plugin].distribution
                    second = self.infos[impl.plugin_name].distribution
                    raise PluginConflict(
                        f"backend name {record.name!r} is provided by two distributions: "
                        f"{first} and {second}; uninstall or block one of them"
                    )
                found[record.name] = record
        return found

    @cached_property
    def storage_engines(self) -> dict[str, Backend[StorageFactory]]:
        return self._backends("alopex_storage_engines")

    @cached_property
    def index_providers(self) -> dict[str, Backend[IndexFactory]]:
        return self._backends("alopex_index_providers")

    @cached_property
    def transaction_managers(self) -> dict[str, Backend[TransactionManagerFactory]]:
        return self._backends("alopex_transaction_managers")

    @cached_property
    def transports(self) -> dict[str, Backend[TransportFactory]]:
        return self._backends("alopex_transports")

    @cached_property
    def consensus_backends(self) -> dict[str, Backend[ConsensusFactory]]:
        return self._backends("alopex_consensus_backends")

    def select(self, kind: str, name: str) -> Backend[Any]:
        """The backend of ``kind`` (a property name above) registered as ``name``."""
        available: dict[str, Backend[Any]] = getattr(self, kind)
        key = name.strip().lower().replace("_", "-")
        if key in available:
            return available[key]
        label = kind.rstrip("s").replace("_", " ")
        message = f"no {label} named {name!r}; installed: {', '.join(sorted(available)) or 'none'}"
        close = difflib.get_close_matches(key, available, n=1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
        message += _install_hint(key)
        cause = self.failed.get(key)
        if cause is not None:
            message += f"; plugin {key!r} is installed but failed to load: {cause!r}"
        raise PluginNotFound(message) from cause

    # -- configuration and CLI -----------------------------------------------------------

    @cached_property
    def config_keys(self) -> list[ConfigKey]:
        return [key for keys in self._pm.hook.alopex_config_keys() for key in keys]

    def cli_commands(self) -> list[click.Command]:
        return [cmd for cmds in self._pm.hook.alopex_cli_commands() for cmd in cmds]

    def provided_by(self, plugin: str) -> list[str]:
        """``kind:name`` of every backend ``plugin`` registered, for ``alopex plugins``."""
        return [
            f"{label}:{name}"
            for kind, label in KINDS.items()
            for name, backend in getattr(self, kind).items()
            if backend.plugin == plugin
        ]


def _alopex_entry_points() -> Iterable[metadata.EntryPoint]:
    return metadata.entry_points(group=ENTRY_POINT_GROUP)


def _installed(distribution: str) -> bool:
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


def _install_hint(name: str) -> str:
    extra = KNOWN_EXTRAS.get(name)
    if extra is None:
        return "; no known distribution provides it"
    return f"; install it with: pip install 'alopex[{extra}]'"
