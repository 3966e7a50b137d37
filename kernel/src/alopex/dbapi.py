"""PEP 249 module-level names: type objects and constructors."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

Date = dt.date
Time = dt.time
Timestamp = dt.datetime
Binary = bytes


def DateFromTicks(ticks: float) -> dt.date:
    return dt.date(*time.localtime(ticks)[:3])


def TimeFromTicks(ticks: float) -> dt.time:
    return dt.time(*time.localtime(ticks)[3:6])


def TimestampFromTicks(ticks: float) -> dt.datetime:
    return dt.datetime(*time.localtime(ticks)[:6])


class DBAPITypeObject:
    """Compares equal to every type code of its group (PEP 249)."""

    def __init__(self, *names: str) -> None:
        self.names = frozenset(names)

    def __eq__(self, other: Any) -> bool:
        name = str(other).split("(")[0]
        return name in self.names

    def __hash__(self) -> int:
        return hash(self.names)


STRING = DBAPITypeObject("TEXT", "VARCHAR", "string")
BINARY = DBAPITypeObject("BLOB", "binary")
NUMBER = DBAPITypeObject(
    "INTEGER", "BIGINT", "REAL", "DOUBLE", "DECIMAL", "BOOLEAN", "int64", "double", "bool"
)
DATETIME = DBAPITypeObject("TIMESTAMP", "DATE", "timestamp[us]", "date32[day]")
ROWID = DBAPITypeObject("ROWID")

apilevel = "2.0"
threadsafety = 1  # threads may share the module, not connections
paramstyle = "qmark"  # ":name" is accepted too
