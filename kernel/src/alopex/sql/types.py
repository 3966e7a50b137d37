"""SQL types, their Arrow types, and conversion of stored values to Arrow arrays.

Columns are strictly typed (as in PostgreSQL and DuckDB, unlike SQLite's affinity): a
value is converted to the column's type on write, and a value that cannot be is an error
naming the column.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import attrs
import numpy as np
import pyarrow as pa
from sqlglot import exp

from alopex.errors import DataError, NotSupportedError


@attrs.frozen
class SqlType:
    """A column type: ``name`` is the SQL spelling, ``arrow`` the Arrow type it scans as."""

    name: str
    arrow: pa.DataType
    dim: int | None = None  # VECTOR(n)
    metric: str | None = None  # VECTOR(n, COSINE)

    def __str__(self) -> str:
        return self.name


INTEGER = SqlType("INTEGER", pa.int64())
BIGINT = SqlType("BIGINT", pa.int64())
REAL = SqlType("REAL", pa.float64())
DOUBLE = SqlType("DOUBLE", pa.float64())
TEXT = SqlType("TEXT", pa.string())
BLOB = SqlType("BLOB", pa.binary())
BOOLEAN = SqlType("BOOLEAN", pa.bool_())
TIMESTAMP = SqlType("TIMESTAMP", pa.timestamp("us"))
DATE = SqlType("DATE", pa.date32())

_INTS = {
    exp.DataType.Type.INT,
    exp.DataType.Type.TINYINT,
    exp.DataType.Type.SMALLINT,
    exp.DataType.Type.MEDIUMINT,
}
_BY_KIND: dict[Any, SqlType] = {
    **dict.fromkeys(_INTS, INTEGER),
    exp.DataType.Type.BIGINT: BIGINT,
    exp.DataType.Type.FLOAT: REAL,
    exp.DataType.Type.DOUBLE: REAL,
    exp.DataType.Type.TEXT: TEXT,
    exp.DataType.Type.VARCHAR: TEXT,
    exp.DataType.Type.CHAR: TEXT,
    exp.DataType.Type.NCHAR: TEXT,
    exp.DataType.Type.NVARCHAR: TEXT,
    exp.DataType.Type.BLOB: BLOB,
    exp.DataType.Type.VARBINARY: BLOB,
    exp.DataType.Type.BINARY: BLOB,
    exp.DataType.Type.BOOLEAN: BOOLEAN,
    exp.DataType.Type.TIMESTAMP: TIMESTAMP,
    exp.DataType.Type.DATETIME: TIMESTAMP,
    exp.DataType.Type.DATE: DATE,
}


def decimal_type(precision: int, scale: int) -> SqlType:
    return SqlType(f"DECIMAL({precision},{scale})", pa.decimal128(precision, scale))


def vector_type(dim: int, metric: str | None = None) -> SqlType:
    name = f"VECTOR({dim}{', ' + metric.upper() if metric else ''})"
    return SqlType(name, pa.list_(pa.float32(), dim), dim, metric.lower() if metric else None)


def from_sqlglot(datatype: exp.DataType, column: str = "?") -> SqlType:
    """Map a parsed type (``INTEGER``, ``DECIMAL(10,2)``, ``VECTOR(384)``) to a SqlType."""
    kind = datatype.this
    if kind in _BY_KIND:
        return _BY_KIND[kind]
    params = [p.this for p in datatype.expressions]
    if kind == exp.DataType.Type.DECIMAL:
        precision = int(params[0].name) if params else 38
        scale = int(params[1].name) if len(params) > 1 else 0
        return decimal_type(precision, scale)
    if kind == exp.DataType.Type.VECTOR:
        if not params:
            raise DataError(f"VECTOR column {column!r} needs a dimension, e.g. VECTOR(384)")
        dim = int(params[0].name)
        metric = params[1].name if len(params) > 1 else None
        if metric and metric.lower() not in ("cosine", "l2", "inner"):
            raise DataError(
                f"unknown vector metric {metric!r} for column {column!r}; use COSINE, L2 or INNER"
            )
        return vector_type(dim, metric)
    raise NotSupportedError(f"column {column!r}: type {datatype.sql()} is not supported")


_BY_NAME = {
    t.name: t for t in (INTEGER, BIGINT, REAL, DOUBLE, TEXT, BLOB, BOOLEAN, TIMESTAMP, DATE)
}


def parse_type_name(text: str) -> SqlType:
    """Rebuild a type from its stored name (the catalog's round trip of ``SqlType.name``)."""
    if text in _BY_NAME:
        return _BY_NAME[text]
    base, _, rest = text.partition("(")
    params = [p.strip() for p in rest.rstrip(")").split(",")]
    if base == "DECIMAL":
        return decimal_type(int(params[0]), int(params[1]))
    if base == "VECTOR":
        return vector_type(int(params[0]), params[1] if len(params) > 1 else None)
    raise NotSupportedError(f"unknown stored type {text!r}")


# -- values ------------------------------------------------------------------------------


def coerce(value: Any, sql_type: SqlType, column: str) -> Any:
    """Convert a Python value to what a column of ``sql_type`` stores, or raise DataError.

    Stored forms: int, float, str, bytes, bool, int microseconds (TIMESTAMP), int days
    (DATE), str (DECIMAL), float32 bytes (VECTOR).
    """
    if value is None:
        return None
    arrow = sql_type.arrow
    try:
        if pa.types.is_integer(arrow):
            if isinstance(value, bool):
                return int(value)
            if isinstance(value, int):
                return value
            if isinstance(value, float):
                if value.is_integer():
                    return int(value)
                return _bad(value, sql_type, column)  # strict: 1.5 is no INTEGER
            if isinstance(value, str):
                return _number_from_text(value, sql_type, column)
            if isinstance(value, decimal.Decimal) and value == value.to_integral_value():
                return int(value)
        elif pa.types.is_floating(arrow):
            if isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, str):
                return float(_number_from_text(value, sql_type, column))
        elif pa.types.is_string(arrow):
            if isinstance(value, str):
                return value
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return repr(value) if isinstance(value, float) else str(value)
        elif pa.types.is_binary(arrow):
            if isinstance(value, (bytes, bytearray, memoryview)):
                return bytes(value)
            if isinstance(value, str):
                return value.encode()
        elif pa.types.is_boolean(arrow):
            if isinstance(value, (bool, int)):
                return bool(value)
        elif pa.types.is_timestamp(arrow):
            if isinstance(value, str):
                value = dt.datetime.fromisoformat(value)
            if isinstance(value, dt.datetime):
                return _micros(value)
            if isinstance(value, int):
                return value
        elif pa.types.is_date32(arrow):
            if isinstance(value, str):
                value = dt.date.fromisoformat(value)
            if isinstance(value, dt.date):
                return value.toordinal() - _EPOCH_ORDINAL
        elif pa.types.is_decimal(arrow):
            number = decimal.Decimal(str(value)) if not isinstance(value, bool) else None
            if number is not None and number.is_finite():
                return str(number.quantize(decimal.Decimal(1).scaleb(-arrow.scale)))
        elif sql_type.dim is not None:
            return vector_bytes(value, sql_type.dim, column)
    except (ValueError, TypeError, ArithmeticError) as err:
        raise DataError(f"column {column!r} ({sql_type}) cannot hold {value!r}: {err}") from None
    return _bad(value, sql_type, column)


def _bad(value: Any, sql_type: SqlType, column: str) -> Any:
    raise DataError(
        f"column {column!r} is {sql_type} and cannot hold {value!r} ({type(value).__name__})"
    )


def _number_from_text(text: str, sql_type: SqlType, column: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            return _bad(text, sql_type, column)  # type: ignore[no-any-return]
        if number.is_integer():
            return int(number)
        if pa.types.is_integer(sql_type.arrow):
            return _bad(text, sql_type, column)  # type: ignore[no-any-return]
        return number


_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def _micros(value: dt.datetime) -> int:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    delta = value - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_vector_text(text: str, what: str) -> np.ndarray:
    """A vector literal like ``'[0.1, 0.2]'`` as float32."""
    body = text.strip()
    if not (body.startswith("[") and body.endswith("]")):
        raise DataError(f"{what}: {text[:40]!r} is not a vector literal like '[1, 2]'")
    try:
        return np.array([float(x) for x in body[1:-1].split(",") if x.strip()], np.float32)
    except ValueError:
        raise DataError(f"{what}: {text[:40]!r} holds something that is not a number") from None


def vector_bytes(value: Any, dim: int, column: str) -> bytes:
    """float32 bytes of a vector given as a list, NumPy array or '[0.1, 0.2]' text."""
    if isinstance(value, bytes):
        array = np.frombuffer(value, dtype=np.float32)
    elif isinstance(value, str):
        array = parse_vector_text(value, f"column {column!r}")
    else:
        try:
            array = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError):
            raise DataError(f"column {column!r}: {value!r} is not a vector") from None
    if array.ndim != 1 or array.shape[0] != dim:
        got = array.shape[0] if array.ndim == 1 else array.shape
        raise DataError(f"column {column!r} is VECTOR({dim}) but got {got} dimensions")
    if not np.isfinite(array).all():
        raise DataError(f"column {column!r}: vectors may not contain NaN or infinity")
    return array.tobytes()


def to_arrow(values: list[Any], sql_type: SqlType) -> pa.Array:
    """Build one Arrow column from stored values (see ``coerce`` for their forms)."""
    arrow = sql_type.arrow
    if pa.types.is_timestamp(arrow) or pa.types.is_date32(arrow):
        storage = pa.int64() if pa.types.is_timestamp(arrow) else pa.int32()
        return pa.array(values, storage).cast(arrow)
    if pa.types.is_decimal(arrow):
        return pa.array([None if v is None else decimal.Decimal(v) for v in values], arrow)
    if sql_type.dim is not None:
        flat = np.frombuffer(b"".join(v for v in values if v is not None), np.float32)
        if all(v is not None for v in values):
            return pa.FixedSizeListArray.from_arrays(pa.array(flat), sql_type.dim)
        mask = pa.array([v is None for v in values])
        full = np.zeros((len(values), sql_type.dim), np.float32)
        full[~np.asarray(mask)] = flat.reshape(-1, sql_type.dim)
        return pa.FixedSizeListArray.from_arrays(pa.array(full.ravel()), sql_type.dim, mask=mask)
    return pa.array(values, arrow)


def to_python(value: Any, sql_type: SqlType) -> Any:
    """A stored value as the Python object a DB-API row shows."""
    if value is None:
        return None
    arrow = sql_type.arrow
    if pa.types.is_timestamp(arrow):
        return _EPOCH + dt.timedelta(microseconds=value)
    if pa.types.is_date32(arrow):
        return dt.date.fromordinal(value + _EPOCH_ORDINAL)
    if pa.types.is_decimal(arrow):
        return decimal.Decimal(value)
    if sql_type.dim is not None:
        return np.frombuffer(value, np.float32).tolist()
    return value
