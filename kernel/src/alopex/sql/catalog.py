"""The catalog: tables, indexes and views, stored in the key space and read per snapshot.

Names are case-insensitive (looked up lower-cased) and keep their spelling for display.
Every DDL statement bumps the catalog version, so plans cached against an older version
are never reused.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs
import msgpack

from alopex.errors import ProgrammingError
from alopex.sql.encoding import CATALOG
from alopex.sql.types import SqlType, parse_type_name

VERSION_KEY = CATALOG + b"\x00version"
NEXT_ID_KEY = CATALOG + b"\x00next_id"
_KINDS = ("table", "index", "view")


@attrs.frozen
class Column:
    name: str
    type: SqlType
    not_null: bool = False
    default: str | None = None  # SQL text of the DEFAULT expression


@attrs.frozen
class Table:
    id: int
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[int, ...] = ()  # column positions; () means a hidden rowid
    uniques: tuple[tuple[int, ...], ...] = ()
    checks: tuple[str, ...] = ()  # SQL text of CHECK expressions

    @property
    def key(self) -> str:
        return self.name.lower()

    def position(self, column: str) -> int:
        lowered = column.lower()
        for n, col in enumerate(self.columns):
            if col.name.lower() == lowered:
                return n
        raise unknown("column", column, [c.name for c in self.columns], f"table {self.name}")

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


@attrs.frozen
class Index:
    id: int
    name: str
    table: str
    columns: tuple[int, ...]
    unique: bool = False
    method: str = "btree"  # "hnsw" / "ivf" for vector indexes
    params: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def key(self) -> str:
        return self.name.lower()


@attrs.frozen
class View:
    name: str
    sql: str
    columns: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return self.name.lower()


Entry = Table | Index | View


def unknown(kind: str, name: str, known: list[str], where: str = "") -> ProgrammingError:
    """An unknown-name error that suggests the nearest known name."""
    message = f"no such {kind}: {name}" + (f" in {where}" if where else "")
    close = difflib.get_close_matches(name.lower(), [k.lower() for k in known], n=1)
    if close:
        spelled = next(k for k in known if k.lower() == close[0])
        message += f" (did you mean {spelled!r}?)"
    return ProgrammingError(message)


@attrs.frozen
class Catalog:
    """An immutable view of every schema object at one catalog version."""

    version: int
    tables: Mapping[str, Table]
    indexes: Mapping[str, Index]
    views: Mapping[str, View]

    def table(self, name: str) -> Table:
        found = self.tables.get(name.lower())
        if found is None:
            raise unknown(
                "table",
                name,
                [t.name for t in self.tables.values()] + [v.name for v in self.views.values()],
            )
        return found

    def indexes_of(self, table: str) -> list[Index]:
        lowered = table.lower()
        return [
            i for i in self.indexes.values() if i.table.lower() == lowered and i.method == "btree"
        ]

    def vector_indexes_of(self, table: str) -> list[Index]:
        """ANN indexes (HNSW, IVF) of ``table``: kept outside the key space, see sql/ann.py."""
        lowered = table.lower()
        return [
            i for i in self.indexes.values() if i.table.lower() == lowered and i.method != "btree"
        ]

    def exists(self, name: str) -> bool:
        lowered = name.lower()
        return lowered in self.tables or lowered in self.views or lowered in self.indexes

    @classmethod
    def load(
        cls,
        scan: Callable[[bytes], Iterator[tuple[bytes, bytes]]],
        get: Callable[[bytes], bytes | None],
    ) -> Catalog:
        tables: dict[str, Table] = {}
        indexes: dict[str, Index] = {}
        views: dict[str, View] = {}
        for key, value in scan(CATALOG + b"/"):
            kind = key[2:].split(b"/", 1)[0].decode()
            entry = _decode(kind, msgpack.unpackb(value))
            target: dict[str, Any] = {"table": tables, "index": indexes, "view": views}[kind]  # type: ignore[assignment]
            target[entry.key] = entry
        raw = get(VERSION_KEY)
        return cls(int(raw) if raw else 0, tables, indexes, views)


def entry_key(entry: Entry) -> bytes:
    kind = {Table: "table", Index: "index", View: "view"}[type(entry)]
    return CATALOG + f"/{kind}/{entry.key}".encode()


def encode_entry(entry: Entry) -> bytes:
    data = attrs.asdict(entry, recurse=False)
    if isinstance(entry, Table):
        data["columns"] = [
            {"name": c.name, "type": c.type.name, "not_null": c.not_null, "default": c.default}
            for c in entry.columns
        ]
    return msgpack.packb(data)  # type: ignore[no-any-return]


def _decode(kind: str, data: dict[str, Any]) -> Entry:
    if kind == "table":
        data["columns"] = tuple(
            Column(c["name"], parse_type_name(c["type"]), c["not_null"], c["default"])
            for c in data["columns"]
        )
        data["primary_key"] = tuple(data["primary_key"])
        data["uniques"] = tuple(tuple(u) for u in data["uniques"])
        data["checks"] = tuple(data["checks"])
        return Table(**data)
    if kind == "index":
        data["columns"] = tuple(data["columns"])
        return Index(**data)
    data["columns"] = tuple(data["columns"])
    return View(**data)
