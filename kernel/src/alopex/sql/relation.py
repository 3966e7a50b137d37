"""Relations: an Arrow table plus the names its columns answer to.

Internal column names are positional (``c0``, ``c1``...), so joins never collide; the
``fields`` list maps SQL names (optionally qualified by a table alias) to positions.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np
import pyarrow as pa

from alopex.errors import ProgrammingError
from alopex.sql.catalog import unknown


@attrs.frozen
class Field:
    name: str
    table: str | None = None  # alias or table name that qualifies it
    hidden: bool = False  # not expanded by SELECT * (e.g. rowid)


@attrs.define
class Relation:
    table: pa.Table
    fields: list[Field]

    @classmethod
    def build(
        cls,
        columns: Sequence[pa.Array | pa.ChunkedArray],
        fields: list[Field],
        num_rows: int | None = None,
    ) -> Relation:
        names = [f"c{n}" for n in range(len(columns))]
        if not columns:
            return cls(pa.table({"_": pa.nulls(num_rows or 0)}).drop_columns(["_"]), fields)
        return cls(pa.table(list(columns), names=names), fields)

    @classmethod
    def single_row(cls) -> Relation:
        """What a SELECT without FROM reads: one row, with one hidden column so that
        row-wise operations (take, filter) keep track of the row."""
        return cls(pa.table({"c0": pa.nulls(1)}), [Field("\x00row", hidden=True)])

    @property
    def num_rows(self) -> int:
        return int(self.table.num_rows)

    def column(self, position: int) -> pa.Array:
        """One column as a single contiguous array (kernels mix arrays and scalars)."""
        column = self.table.column(position)
        return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()

    def resolve(self, name: str, table: str | None = None) -> int | None:
        """Position of ``table.name`` (or ``name``); None if absent; error if ambiguous."""
        lowered = name.lower()
        qualifier = table.lower() if table else None
        found = [
            n
            for n, f in enumerate(self.fields)
            if f.name.lower() == lowered
            and (qualifier is None or (f.table is not None and f.table.lower() == qualifier))
        ]
        if len(found) > 1:  # USING/NATURAL joins hide the right side's copy
            found = [n for n in found if not self.fields[n].hidden] or found
        if len(found) > 1:
            raise ProgrammingError(f"ambiguous column name: {name}; qualify it with a table")
        return found[0] if found else None

    def require(self, name: str, table: str | None = None) -> int:
        position = self.resolve(name, table)
        if position is None:
            known = [f.name for f in self.fields if not f.hidden]
            where = f"table {table}" if table else ""
            if table and not any((f.table or "").lower() == table.lower() for f in self.fields):
                raise ProgrammingError(f"no such table or alias: {table}")
            raise unknown("column", f"{table}.{name}" if table else name, known, where)
        return position

    def take(self, indices: pa.Array | np.ndarray) -> Relation:
        return Relation(self.table.take(indices), list(self.fields))

    def filter(self, mask: pa.Array) -> Relation:
        return Relation(self.table.filter(mask), list(self.fields))

    def slice(self, offset: int, length: int | None = None) -> Relation:
        return Relation(self.table.slice(offset, length), list(self.fields))

    def concat_columns(self, other: Relation) -> Relation:
        """Side-by-side: both relations must have the same number of rows."""
        columns = [*self.table.columns, *other.table.columns]
        fields = [*self.fields, *other.fields]
        return Relation.build(columns, fields, self.num_rows)

    def requalify(self, alias: str) -> Relation:
        return Relation(self.table, [attrs.evolve(f, table=alias) for f in self.fields])
