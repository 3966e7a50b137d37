"""Byte layouts of SQL data in the ordered key space.

Keys are order-preserving (byte order == SQL order), so primary-key ranges and index
ranges are storage range scans. Row values are msgpack arrays, so a batch of rows decodes
in one C call (``decode_rows``).

Key space (the KV API owns ``b"k"``)::

    b"s" + name            catalog entries (tables, indexes, views) and counters
    b"t" + table id (4) + encoded primary key          -> msgpack row
    b"x" + index id (4) + encoded columns + primary key -> b""
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import msgpack

from alopex.errors import DataError

CATALOG = b"s"
ROWS = b"t"
INDEX = b"x"

_SIGN = 1 << 63
_pack_double = struct.Struct(">d").pack
_unpack_u64 = struct.Struct(">Q").unpack
_NULL, _VALUE = b"\x01", b"\x02"


def table_prefix(table_id: int) -> bytes:
    return ROWS + table_id.to_bytes(4, "big")


def index_prefix(index_id: int) -> bytes:
    return INDEX + index_id.to_bytes(4, "big")


def encode_int(value: int) -> bytes:
    try:
        return (value + _SIGN).to_bytes(8, "big")
    except OverflowError:
        raise DataError(f"integer {value} is outside the 64-bit key range") from None


def decode_int(data: bytes) -> int:
    return int.from_bytes(data[:8], "big") - _SIGN


def _encode_float(value: float) -> bytes:
    bits: int = _unpack_u64(_pack_double(value + 0.0))[0]  # +0.0 folds -0.0 into 0.0
    bits = bits ^ 0xFFFFFFFFFFFFFFFF if bits & _SIGN else bits | _SIGN
    return bits.to_bytes(8, "big")


def _encode_bytes(value: bytes) -> bytes:
    return value.replace(b"\x00", b"\x00\xff") + b"\x00\x00"


def encode_value(value: Any) -> bytes:
    """One value as an order-preserving key part; NULL sorts first."""
    if value is None:
        return _NULL
    if isinstance(value, bool):
        return _VALUE + (b"\x01" if value else b"\x00")
    if isinstance(value, int):
        return _VALUE + encode_int(value)
    if isinstance(value, float):
        return _VALUE + _encode_float(value)
    if isinstance(value, str):
        return _VALUE + _encode_bytes(value.encode())
    if isinstance(value, bytes):
        return _VALUE + _encode_bytes(value)
    raise DataError(f"cannot use {type(value).__name__} {value!r} in a key")


def skip_values(data: bytes, offset: int, widths: Sequence[int | None]) -> int:
    """The offset just past encoded values of the given widths (None: escaped bytes).

    Widths come from the column types: 8 for numbers, timestamps and dates, 1 for
    booleans, None for text and blobs; a NULL is always one tag byte.
    """
    for width in widths:
        if data[offset] == _NULL[0]:
            offset += 1
        elif width is not None:
            offset += 1 + width
        else:
            position = offset + 1
            while data[position] != 0 or data[position + 1] != 0:
                position += 2 if data[position] == 0 else 1
            offset = position + 2
    return offset


def encode_key(values: Sequence[Any]) -> bytes:
    """A composite key: the concatenation keeps lexicographic SQL order."""
    return b"".join(encode_value(v) for v in values)


# -- rows ---------------------------------------------------------------------------------

_packer = msgpack.Packer(use_bin_type=True)


def encode_row(row: Sequence[Any]) -> bytes:
    return _packer.pack(row)  # type: ignore[no-any-return]


def decode_row(data: bytes) -> list[Any]:
    return msgpack.unpackb(data, raw=False)  # type: ignore[no-any-return]


def decode_rows(values: Sequence[bytes]) -> list[tuple[Any, ...]]:
    """Decode many rows in one C call by framing them as one msgpack array (rows come
    back as tuples, which msgpack builds twice as fast as lists)."""
    if not values:
        return []
    header = b"\xdd" + len(values).to_bytes(4, "big")
    rows = msgpack.unpackb(header + b"".join(values), raw=False, use_list=False)
    return list(rows)
