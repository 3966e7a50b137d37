"""The error tree: every failure the public API raises is an ``AlopexError``.

The tree follows PEP 249 (``Error`` / ``DatabaseError`` / ``OperationalError`` ...) so the
DB-API surface needs no second hierarchy, and mixes in builtins where a caller would
naturally catch one (``ConfigError`` is also a ``ValueError``).
"""

from __future__ import annotations


class AlopexError(Exception):
    """Root of every error Alopex raises (PEP 249 ``Error``)."""


class Warning(Exception):
    """PEP 249 ``Warning``: important but non-fatal conditions."""


class InterfaceError(AlopexError):
    """The API was misused (PEP 249): a closed connection, a finished transaction."""


class InvalidArgument(InterfaceError, TypeError):
    """An argument has the wrong type or value, e.g. a ``str`` key where bytes are needed."""


class ConfigError(AlopexError, ValueError):
    """A configuration file or dict is invalid: unknown key, wrong type, bad value."""


class PluginError(AlopexError):
    """A plugin could not be found, loaded or selected."""


class PluginNotFound(PluginError, LookupError):
    """A backend or plugin named in config is not installed."""


class PluginConflict(PluginError):
    """Two installed plugins claim the same backend name."""


class DatabaseError(AlopexError):
    """PEP 249 ``DatabaseError``: errors related to the database itself."""


class OperationalError(DatabaseError):
    """PEP 249 ``OperationalError``: the database could not do what was asked."""


class StorageError(OperationalError):
    """The storage engine failed (I/O error, disk full, engine error)."""


class StorageCorruption(StorageError):
    """Stored data failed a consistency check; nothing was changed."""


class NotADatabase(StorageError):
    """The path is a file, or a directory that belongs to another program."""


class DatabaseLocked(StorageError):
    """Another process owns the database directory."""

    def __init__(self, path: str, pid: int | None) -> None:
        holder = f"process {pid}" if pid else "another process"
        super().__init__(
            f"database {path!r} is locked by {holder}; close it there first "
            "(one process owns a database directory at a time)"
        )
        self.path = path
        self.pid = pid


class ReadOnlyDatabase(StorageError):
    """The database directory cannot be written by this process."""


class TransactionError(OperationalError):
    """A transaction could not proceed."""


class TransactionConflict(TransactionError):
    """Another transaction committed a write to a key this one wrote (first committer wins).

    Retryable: nothing of this transaction was applied, so run it again from the start
    on a fresh transaction.
    """

    retryable = True


class TransactionClosed(InterfaceError):
    """The transaction already committed or rolled back."""


class ReadOnlyTransaction(TransactionError):
    """A write was attempted in a read-only transaction."""


class IntegrityError(DatabaseError):
    """PEP 249 ``IntegrityError``: a constraint was violated."""


class ProgrammingError(DatabaseError):
    """PEP 249 ``ProgrammingError``: bad SQL, unknown table, wrong parameter count."""


class DataError(DatabaseError):
    """PEP 249 ``DataError``: a value is out of range or of the wrong kind."""


class InternalError(DatabaseError):
    """PEP 249 ``InternalError``: a bug in Alopex; please report it."""


class NotSupportedError(DatabaseError, NotImplementedError):
    """PEP 249 ``NotSupportedError``: the feature is not available with this setup."""


class PluginWarning(UserWarning):
    """An autoloaded plugin failed to load and was skipped."""
