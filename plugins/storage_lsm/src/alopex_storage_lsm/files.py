"""The write-ahead log and the manifest: record framing, recovery and atomic replacement.

WAL record: ``length (u32 LE) | crc32 of length (u32 LE) | crc32 of payload (u32 LE) |
payload``, where the payload is ``msgpack((seq, {key: value-or-None}))`` -- one record per
write batch. A batch is applied at recovery only if its whole record is present and both
checksums match; a length that fails its own checksum is damage, never a torn tail.

MANIFEST: ``magic | length | crc32 | msgpack(facts)``, replaced by writing
``MANIFEST.tmp``, fsyncing it, renaming it over ``MANIFEST`` and fsyncing the directory,
so a crash leaves either the old or the new manifest, never a mix.
"""

from __future__ import annotations

import os
import signal
import struct
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack

from alopex.contracts.storage import fsync_path
from alopex.errors import StorageCorruption

RECORD = struct.Struct("<III")  # payload length, its crc32, the payload's crc32
MANIFEST = "MANIFEST"
MANIFEST_TMP = "MANIFEST.tmp"
MANIFEST_MAGIC = b"ALXLSMM\x00"
MANIFEST_HEADER = struct.Struct("<8sII")
MANIFEST_VERSION = 1

#: fault-injection point for the crash tests: ``ALOPEX_LSM_FAULT=<point>[:<n>]`` SIGKILLs
#: the process the ``n``-th time (default 1st) it reaches that point (read once at import)
FAULT, _, _NTH = os.environ.get("ALOPEX_LSM_FAULT", "").partition(":")
_left = int(_NTH or 1)


def fault(point: str) -> None:
    global _left
    if point == FAULT:
        _left -= 1
        if not _left:
            os.kill(os.getpid(), signal.SIGKILL)


def wal_name(number: int) -> str:
    return f"{number:06d}.wal"


def encode_record(seq: int, batch: dict[bytes, bytes | None]) -> bytes:
    payload: bytes = msgpack.packb((seq, batch))
    size = len(payload)
    return RECORD.pack(size, _length_crc(size), zlib.crc32(payload)) + payload


def _length_crc(length: int) -> int:
    # The length has its own checksum: a damaged length that points past the end of the
    # file must read as damage, not as a torn tail that recovery may drop.
    return zlib.crc32(length.to_bytes(4, "little"))


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def replay_wal(path: Path, *, last: bool) -> Iterator[tuple[int, dict[bytes, Any], int]]:
    """``(seq, batch, record bytes)`` of every intact record of the WAL at ``path``.

    A torn tail (a record cut short, or a bad record with nothing but zeros after it) is
    dropped: the file is truncated to its intact prefix (only in the ``last`` WAL, which
    is where a crash tears). A bad record followed by more data, or any damage in an
    older WAL, may hide acknowledged commits: that raises StorageCorruption.
    """
    data = path.read_bytes()
    pos, size = 0, len(data)
    while pos < size:
        problem = None
        body_end = size
        if pos + RECORD.size > size:
            problem = "a record header cut short"
        else:
            length, length_crc, crc = RECORD.unpack_from(data, pos)
            body_end = pos + RECORD.size + length
            if length == 0:
                problem = "an empty record"
            elif length_crc != _length_crc(length):
                problem, body_end = "a record length that fails its checksum", pos + RECORD.size
            elif body_end > size:
                problem = "a record cut short"
            else:
                payload = data[pos + RECORD.size : body_end]
                if zlib.crc32(payload) != crc:
                    problem = "a record that fails its checksum"
                else:
                    try:
                        seq, batch = msgpack.unpackb(payload, strict_map_key=False)
                    except Exception:
                        problem = "a record that does not decode"
        if problem is None:
            yield seq, batch, body_end - pos
            pos = body_end
            continue
        tail_is_torn = problem.endswith("cut short") or not data[body_end:].strip(b"\x00")
        if problem == "an empty record":
            tail_is_torn = not data[pos:].strip(b"\x00")
        if not (last and tail_is_torn):
            raise StorageCorruption(
                f"write-ahead log {str(path)!r} holds {problem} at offset {pos} with data "
                "after it: committed batches may be behind the damage, so the database "
                "refuses to open rather than lose them silently; restore from a backup"
            )
        warnings.warn(
            f"write-ahead log {str(path)!r}: dropped a torn tail of {size - pos} bytes at "
            f"offset {pos} ({problem}); it held no completed commit",
            RuntimeWarning,
            stacklevel=2,
        )
        with open(path, "r+b") as file:
            file.truncate(pos)
            os.fsync(file.fileno())
        return


def write_manifest(directory: Path, facts: dict[str, Any]) -> None:
    payload = msgpack.packb({"version": MANIFEST_VERSION, **facts})
    data = MANIFEST_HEADER.pack(MANIFEST_MAGIC, len(payload), zlib.crc32(payload)) + payload
    tmp = directory / MANIFEST_TMP
    with open(tmp, "wb") as file:
        file.write(data[: len(data) // 2])
        fault("manifest-tmp")
        file.write(data[len(data) // 2 :])
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, directory / MANIFEST)
    fault("manifest-renamed")
    fsync_path(directory)


def read_manifest(directory: Path) -> dict[str, Any] | None:
    path = directory / MANIFEST
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    size = MANIFEST_HEADER.size
    if len(data) >= size:
        magic, length, crc = MANIFEST_HEADER.unpack_from(data)
        payload = data[size : size + length]
        if magic == MANIFEST_MAGIC and len(payload) == length and zlib.crc32(payload) == crc:
            facts: dict[str, Any] = msgpack.unpackb(payload)
            if facts.get("version") != MANIFEST_VERSION:
                raise StorageCorruption(
                    f"{str(path)!r} has format version {facts.get('version')}, this engine "
                    f"reads version {MANIFEST_VERSION}"
                )
            return facts
    raise StorageCorruption(
        f"{str(path)!r} is damaged (offset 0): it lists the live table files, so the "
        "database cannot be opened; restore it from a backup"
    )
