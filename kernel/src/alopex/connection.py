"""Connections and the key-value API.

The KV API owns the key namespace ``b"k" + key`` in storage, so that SQL tables and
indexes (other prefixes) never collide with user keys.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

from alopex import search
from alopex.config import ConfigSource, read_config, validate
from alopex.contracts.storage import prefix_end
from alopex.contracts.transaction import Transaction as _StorageTransaction
from alopex.cursor import Cursor
from alopex.database import MEMORY, Database
from alopex.errors import InterfaceError, InvalidArgument
from alopex.plugins import PluginPolicy, PluginSet
from alopex.sql.kernels import Params
from alopex.sql.session import Session

KV = b"k"
_KV_END = prefix_end(KV)


def connect(target: str | os.PathLike[str] = MEMORY, *, config: ConfigSource = None) -> Connection:
    """Open (creating if needed) the database at ``target``: a directory path or ``:memory:``.

    ``config`` is a TOML file path or a dict laid over ``modes/embedded.toml``, e.g.
    ``{"storage": {"engine": "rocks", "sync": "full"}}``.
    """
    raw = read_config(config)
    plugins = PluginSet.load(PluginPolicy.from_settings(raw.data.get("plugins", {})))
    settings = validate(raw, plugins.config_keys)
    transport = plugins.select("transports", settings["transport.name"]).factory()
    return Connection(transport.open(os.fspath(target), settings, plugins))


def _key_error(what: str, value: object) -> InvalidArgument:
    hint = "; encode it first, e.g. value.encode()" if isinstance(value, str) else ""
    return InvalidArgument(f"{what} must be bytes, not {type(value).__name__}{hint}")


class Connection:
    """A handle on an open database. Close it (or use ``with``) when done."""

    def __init__(self, database: Database) -> None:
        self._database: Database | None = database
        self._session: Session | None = None
        self._engine = database.engine
        self._txns = database.txns

    @property
    def database(self) -> Database:
        if self._database is None:
            raise InterfaceError("the connection is closed")
        return self._database

    # -- key-value ------------------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        """The value under ``key`` (latest committed), or ``None``."""
        if type(key) is not bytes:
            raise _key_error("key", key)
        return self._engine.get(KV + key)

    def put(self, key: bytes, value: bytes) -> None:
        """Store ``value`` under ``key`` in its own transaction."""
        if type(key) is not bytes:
            raise _key_error("key", key)
        if type(value) is not bytes:
            raise _key_error("value", value)
        self._txns.apply({KV + key: value})

    def delete(self, key: bytes) -> None:
        """Remove ``key`` (no error if absent) in its own transaction."""
        if type(key) is not bytes:
            raise _key_error("key", key)
        self._txns.apply({KV + key: None})

    def scan(
        self,
        start: bytes = b"",
        end: bytes | None = None,
        *,
        prefix: bytes | None = None,
        reverse: bool = False,
    ) -> Iterator[tuple[bytes, bytes]]:
        """``(key, value)`` pairs with ``start <= key < end`` (or starting with ``prefix``),
        in key order or reversed, from one consistent snapshot."""
        low, high = _kv_range(start, end, prefix)
        return _strip(self._engine.scan(low, high, reverse=reverse))

    def transaction(self, *, readonly: bool = False) -> Transaction:
        """``with db.transaction() as tx:`` commits on success, rolls back on an exception."""
        return Transaction(self._txns.begin(readonly=readonly))

    # -- SQL (PEP 249) --------------------------------------------------------------------

    def _sql(self) -> Session:
        session = self._session
        if session is None:
            session = self._session = Session(self.database)
        return session

    def cursor(self) -> Cursor:
        return Cursor(self)

    def execute(self, sql: str, parameters: Params | None = None) -> Cursor:
        """Run one statement (or several separated by ``;``) on a new cursor."""
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Iterable[Params]) -> Cursor:
        return self.cursor().executemany(sql, seq_of_parameters)

    def sql(self, sql: str, parameters: Params | None = None) -> Cursor:
        """DuckDB's spelling of ``execute``."""
        return self.execute(sql, parameters)

    def table(self, name: str) -> search.Table:
        """A table as an object: ``.add(data)`` and ``.search(vector)`` (LanceDB style)."""
        return search.Table(self, name)

    def commit(self) -> None:
        if self._session is not None:
            self._session.commit()

    def rollback(self) -> None:
        if self._session is not None:
            self._session.rollback()

    @property
    def autocommit(self) -> bool:
        """Off by default (PEP 249): statements run in a transaction until ``commit()``."""
        return self._sql().autocommit

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        session = self._sql()
        if value and session.in_transaction:
            session.commit()
        session.autocommit = bool(value)

    @property
    def in_transaction(self) -> bool:
        return self._session is not None and self._session.in_transaction

    # -- lifecycle ------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        return self.database.info()

    def close(self) -> None:
        """Roll back uncommitted SQL work and release the database (PEP 249); the last
        connection of the process closes it."""
        database, self._database = self._database, None
        if database is not None:
            if self._session is not None:
                self._session.rollback()
                self._session = None
            self._engine = self._txns = _Closed()  # type: ignore[assignment]
            database.release()

    @property
    def closed(self) -> bool:
        return self._database is None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        """Commit pending SQL work (roll it back on an exception), then close."""
        if self._database is not None and self._session is not None:
            if exc_type is None:
                self._session.commit()
            else:
                self._session.rollback()
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_database", None) is not None:
            self.close()


class Transaction:
    """A snapshot-isolated transaction over the KV namespace. One thread at a time."""

    __slots__ = ("_tx",)

    def __init__(self, tx: _StorageTransaction) -> None:
        self._tx = tx

    @property
    def readonly(self) -> bool:
        return self._tx.readonly

    def get(self, key: bytes, *, for_update: bool = False) -> bytes | None:
        """Read as of this transaction's snapshot, seeing its own writes.

        ``for_update=True`` makes a concurrent commit to ``key`` a conflict for this
        transaction, which prevents write skew.
        """
        if type(key) is not bytes:
            raise _key_error("key", key)
        return self._tx.read(KV + key, for_update=for_update)  # type: ignore[call-arg]

    def put(self, key: bytes, value: bytes) -> None:
        if type(key) is not bytes:
            raise _key_error("key", key)
        if type(value) is not bytes:
            raise _key_error("value", value)
        self._tx.write(KV + key, value)

    def delete(self, key: bytes) -> None:
        if type(key) is not bytes:
            raise _key_error("key", key)
        self._tx.write(KV + key, None)

    def scan(
        self,
        start: bytes = b"",
        end: bytes | None = None,
        *,
        prefix: bytes | None = None,
        reverse: bool = False,
    ) -> Iterator[tuple[bytes, bytes]]:
        low, high = _kv_range(start, end, prefix)
        return _strip(self._tx.read_range(low, high, reverse=reverse))

    def commit(self) -> None:
        """Apply every write atomically; raises ``TransactionConflict`` (retry) on a lost race."""
        self._tx.commit()

    def rollback(self) -> None:
        self._tx.rollback()

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._tx.commit()
        else:
            self._tx.rollback()


def _kv_range(start: bytes, end: bytes | None, prefix: bytes | None) -> tuple[bytes, bytes | None]:
    if prefix is not None:
        if type(prefix) is not bytes:
            raise _key_error("prefix", prefix)
        return KV + prefix, prefix_end(KV + prefix)
    if type(start) is not bytes:
        raise _key_error("start", start)
    if end is None:
        return KV + start, _KV_END
    if type(end) is not bytes:
        raise _key_error("end", end)
    return KV + start, KV + end


def _strip(pairs: Iterator[tuple[bytes, bytes]]) -> Iterator[tuple[bytes, bytes]]:
    for key, value in pairs:
        yield key[1:], value


class _Closed:
    """Stands in for storage after ``close()`` so every call fails clearly."""

    def __getattr__(self, name: str) -> Any:
        raise InterfaceError("the connection is closed")
