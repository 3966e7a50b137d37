"""An open database: its directory, lock, storage engine, consensus and transactions.

Directory layout::

    <path>/ALOPEX   marker: format version and engine (written before any data)
    <path>/LOCK     flock()ed by the owning process; holds its pid
    <path>/data/    the storage engine's own files
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from alopex.config import Settings
from alopex.contracts.consensus import Consensus
from alopex.contracts.storage import StorageEngine, StorageOptions, fsync_path
from alopex.contracts.transaction import TransactionManager
from alopex.errors import (
    AlopexError,
    ConfigError,
    DatabaseLocked,
    NotADatabase,
    ReadOnlyDatabase,
    StorageCorruption,
    StorageError,
)
from alopex.plugins import PluginSet

MEMORY = ":memory:"
MARKER = "ALOPEX"
LOCK = "LOCK"
DATA = "data"
FORMAT = 1


class Database:
    """Shared by every connection of this process to one target; closed by the last."""

    _open: ClassVar[dict[str, Database]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        key: str,
        path: Path | None,
        settings: Settings,
        engine_name: str,
        engine: StorageEngine,
        consensus: Consensus,
        txns: TransactionManager,
        lock: DirectoryLock | None,
        plugins: PluginSet,
    ) -> None:
        self.key = key
        self.path = path
        self.settings = settings
        self.engine_name = engine_name
        self.engine = engine
        self.consensus = consensus
        self.txns = txns
        self._lock = lock
        self.plugins = plugins
        self._users = 0
        #: run before storage closes (upper layers persist derived state, e.g. ANN indexes)
        self.on_close: list[Callable[[], None]] = []

    # -- opening and closing --------------------------------------------------------------

    @classmethod
    def acquire(cls, target: str, settings: Settings, plugins: PluginSet) -> Database:
        """Open ``target`` or share the instance this process already has open."""
        key = target if target == MEMORY else os.path.realpath(target)
        with cls._registry_lock:
            database = None if target == MEMORY else cls._open.get(key)
            if database is not None and database.settings.sections != settings.sections:
                raise ConfigError(
                    f"database {target!r} is already open in this process with other "
                    "settings; close it first or connect with the same config"
                )
            if database is None:
                database = cls._open_new(key, target, settings, plugins)
                if target != MEMORY:
                    cls._open[key] = database
            database._users += 1
            return database

    def release(self) -> None:
        """Drop one user; the last one closes storage and unlocks the directory."""
        with self._registry_lock:
            self._users -= 1
            if self._users > 0:
                return
            self._open.pop(self.key, None)
        try:
            for callback in self.on_close:
                try:
                    callback()
                except Exception as err:  # derived state: storage must close regardless
                    warnings.warn(f"while closing {self.key}: {err}", RuntimeWarning, 2)
            self.txns.close()
            self.consensus.close()
            self.engine.close()
        finally:
            if self._lock is not None:
                self._lock.release()

    @classmethod
    def _open_new(cls, key: str, target: str, settings: Settings, plugins: PluginSet) -> Database:
        engine_name = settings["storage.engine"]
        if target == MEMORY:
            if "storage.engine" in settings.explicit and engine_name != "memory":
                raise ConfigError(
                    f"':memory:' uses the memory engine, but config asks for "
                    f"storage.engine = {engine_name!r}; pass a directory path instead"
                )
            engine_name = "memory"
        elif engine_name == "memory":
            raise ConfigError(
                f"the memory engine keeps nothing on disk, so it cannot open {target!r}; "
                "connect to ':memory:' or choose a persistent storage.engine"
            )
        path = None if target == MEMORY else Path(target)
        if path is not None:
            engine_name = _check_directory(path, engine_name, settings)
        # Resolve every backend before touching the disk: a bad name changes nothing.
        storage = plugins.select("storage_engines", engine_name)
        consensus_backend = plugins.select("consensus_backends", settings["consensus.backend"])
        manager = plugins.select("transaction_managers", settings["transaction.manager"])

        lock = None
        if path is not None:
            lock = DirectoryLock(path)
            lock.acquire()
        try:
            if path is not None and not (path / MARKER).exists():
                _write_marker(path, engine_name)
            options = StorageOptions(
                None if path is None else path / DATA,
                settings["storage.sync"],
                settings.section(f"storage.{engine_name}"),
            )
            try:
                engine = storage.factory(options)
            except AlopexError:
                raise
            except Exception as err:
                raise StorageError(
                    f"storage engine {engine_name!r} could not open {target!r}: {err}"
                ) from err
            consensus = consensus_backend.factory(engine, settings.section("consensus"))
            txns = manager.factory(engine, consensus, settings.section("transaction"))
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        return cls(key, path, settings, engine_name, engine, consensus, txns, lock, plugins)

    # -- facts ----------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        return {
            "path": str(self.path) if self.path else MEMORY,
            "engine": self.engine_name,
            "sync": self.settings["storage.sync"],
            "consensus": self.consensus.status(),
            "storage": self.engine.stats(),
        }


def _check_directory(path: Path, engine_name: str, settings: Settings) -> str:
    """Refuse files and foreign directories; return the engine the directory was made with."""
    if path.exists() and not path.is_dir():
        raise NotADatabase(
            f"{str(path)!r} is a file, not an Alopex database directory; "
            "pass a directory path (it is created if missing)"
        )
    marker = path / MARKER
    if not marker.exists():
        if path.exists() and any(path.iterdir()):
            found = ", ".join(sorted(p.name for p in path.iterdir())[:5])
            raise NotADatabase(
                f"directory {str(path)!r} is not an Alopex database (it holds {found}); "
                "choose a new or empty directory"
            )
        return engine_name
    try:
        meta = json.loads(marker.read_text(encoding="utf-8"))
        created_with = meta["engine"]
        version = meta["format"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise StorageCorruption(
            f"database marker {str(marker)!r} is unreadable or damaged ({err}); "
            "restore it from a backup"
        ) from err
    if version != FORMAT:
        raise NotADatabase(
            f"database {str(path)!r} has format {version}, this Alopex reads format {FORMAT}"
        )
    if "storage.engine" in settings.explicit and engine_name != created_with:
        raise ConfigError(
            f"database {str(path)!r} was created with storage engine {created_with!r}, but "
            f"config asks for {engine_name!r}; drop storage.engine from the config or set "
            f"it to {created_with!r}"
        )
    return str(created_with)


def _write_marker(path: Path, engine_name: str) -> None:
    from alopex import __version__

    body = json.dumps({"format": FORMAT, "engine": engine_name, "created_by": __version__})
    temp = path / (MARKER + ".tmp")
    with open(temp, "w", encoding="utf-8") as file:
        file.write(body + "\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(temp, path / MARKER)
    fsync_path(path)


class DirectoryLock:
    """An exclusive ``flock`` on ``<path>/LOCK``; the kernel drops it when the owner dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        lock_file = self.path / LOCK
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise ReadOnlyDatabase(
                    f"cannot write to {str(self.path)!r} ({err.strerror}); Alopex needs write "
                    "access to the database directory for its lock and logs. Fix the "
                    "permissions or copy the database to a writable place"
                ) from err
            raise StorageError(f"cannot open {str(lock_file)!r}: {err}") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            pid = int(holder) if holder.isdigit() else None
            raise DatabaseLocked(str(self.path), pid) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
