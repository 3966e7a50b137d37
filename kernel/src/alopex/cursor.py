"""PEP 249 cursors, with DuckDB-style result shortcuts (``.arrow()``, ``.df()``...)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from alopex.errors import InterfaceError, ProgrammingError
from alopex.sql.kernels import Params
from alopex.sql.session import Result, result_arrow, result_rows

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from alopex.connection import Connection

Description = tuple[str, str, None, None, None, None, None]


class Cursor:
    """Runs statements on its connection's session and holds one result at a time."""

    arraysize = 1

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._result: Result | None = None
        self._rows: list[tuple[Any, ...]] | None = None
        self._position = 0
        self._closed = False
        self.rowcount = -1
        self.lastrowid: int | None = None

    # -- running --------------------------------------------------------------------------

    def execute(self, operation: str, parameters: Params | None = None) -> Cursor:
        self._check_open()
        result = self.connection._sql().execute(operation, _params(parameters))
        self._set(result)
        return self

    def executemany(self, operation: str, seq_of_parameters: Iterable[Params]) -> Cursor:
        self._check_open()
        total = self.connection._sql().executemany(
            operation, (_params(p) for p in seq_of_parameters)
        )
        self._set(Result(rowcount=total))
        return self

    def _set(self, result: Result) -> None:
        self._result = result
        self._rows = None
        self._position = 0
        self.rowcount = result.rowcount

    # -- metadata -------------------------------------------------------------------------

    @property
    def description(self) -> list[Description] | None:
        result = self._result
        if result is None or (result.relation is None and result.rows is None):
            return None
        if result.relation is not None:
            return [
                (f.name, str(column.type), None, None, None, None, None)
                for f, column in zip(
                    result.relation.fields, result.relation.table.columns, strict=True
                )
            ]
        return [(name, "", None, None, None, None, None) for name in result.names or []]

    # -- fetching -------------------------------------------------------------------------

    def _all(self) -> list[tuple[Any, ...]]:
        if self._result is None:
            raise ProgrammingError("no statement has been executed")
        if self._rows is None:
            self._rows = result_rows(self._result)
        return self._rows

    def fetchone(self) -> tuple[Any, ...] | None:
        rows = self._all()
        if self._position >= len(rows):
            return None
        self._position += 1
        return rows[self._position - 1]

    def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        rows = self._all()
        count = self.arraysize if size is None else size
        chunk = rows[self._position : self._position + count]
        self._position += len(chunk)
        return chunk

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows = self._all()
        chunk = rows[self._position :]
        self._position = len(rows)
        return chunk

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        while (row := self.fetchone()) is not None:
            yield row

    def arrow(self) -> pa.Table:
        """The whole result as an Arrow table (no row conversion)."""
        if self._result is None:
            raise ProgrammingError("no statement has been executed")
        return result_arrow(self._result)

    def df(self) -> pd.DataFrame:
        return self.arrow().to_pandas()

    def pl(self) -> Any:
        import polars as pl

        return pl.from_arrow(self.arrow())

    def fetchnumpy(self) -> dict[str, np.ndarray]:
        table = self.arrow()
        return {name: table.column(name).to_numpy() for name in table.column_names}

    # -- lifecycle ------------------------------------------------------------------------

    def setinputsizes(self, sizes: Any) -> None:
        """PEP 249: accepted and ignored."""

    def setoutputsize(self, size: Any, column: Any = None) -> None:
        """PEP 249: accepted and ignored."""

    def close(self) -> None:
        self._closed = True
        self._result = None

    def _check_open(self) -> None:
        if self._closed:
            raise InterfaceError("the cursor is closed")
        if self.connection.closed:
            raise InterfaceError("the connection is closed")

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _params(parameters: Params | None) -> Params:
    if parameters is None:
        return ()
    if type(parameters) is tuple or type(parameters) is list:
        return parameters
    if isinstance(parameters, (Sequence, Mapping)) and not isinstance(parameters, (str, bytes)):
        return parameters
    raise ProgrammingError(
        f"parameters must be a sequence or a mapping, not {type(parameters).__name__}"
    )
