"""Alopex: SQL tables, vectors and analytics in one transactional store.

The public API is re-exported here; everything else is private to the package.
"""

from __future__ import annotations

from alopex.connection import Connection, Transaction, connect
from alopex.cursor import Cursor
from alopex.dbapi import (
    BINARY,
    DATETIME,
    NUMBER,
    ROWID,
    STRING,
    Binary,
    Date,
    DateFromTicks,
    Time,
    TimeFromTicks,
    Timestamp,
    TimestampFromTicks,
    apilevel,
    paramstyle,
    threadsafety,
)
from alopex.errors import (
    AlopexError,
    ConfigError,
    DatabaseError,
    DatabaseLocked,
    DataError,
    IntegrityError,
    InterfaceError,
    InternalError,
    InvalidArgument,
    NotADatabase,
    NotSupportedError,
    OperationalError,
    PluginConflict,
    PluginError,
    PluginNotFound,
    PluginWarning,
    ProgrammingError,
    ReadOnlyDatabase,
    ReadOnlyTransaction,
    StorageCorruption,
    StorageError,
    TransactionClosed,
    TransactionConflict,
    TransactionError,
    Warning,
)
from alopex.hookspecs import hookimpl

Error = AlopexError  # the PEP 249 name of the root error

__version__ = "0.1.0"

__all__ = [
    "BINARY",
    "DATETIME",
    "NUMBER",
    "ROWID",
    "STRING",
    "AlopexError",
    "Binary",
    "Cursor",
    "Date",
    "DateFromTicks",
    "Error",
    "Time",
    "TimeFromTicks",
    "Timestamp",
    "TimestampFromTicks",
    "apilevel",
    "paramstyle",
    "threadsafety",
    "ConfigError",
    "Connection",
    "DataError",
    "DatabaseError",
    "DatabaseLocked",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "InvalidArgument",
    "NotADatabase",
    "NotSupportedError",
    "OperationalError",
    "PluginConflict",
    "PluginError",
    "PluginNotFound",
    "PluginWarning",
    "ProgrammingError",
    "ReadOnlyDatabase",
    "ReadOnlyTransaction",
    "StorageCorruption",
    "StorageError",
    "Transaction",
    "TransactionClosed",
    "TransactionConflict",
    "TransactionError",
    "Warning",
    "__version__",
    "connect",
    "hookimpl",
]
