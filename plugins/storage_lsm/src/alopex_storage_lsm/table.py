"""Sorted table files: immutable, checksummed blocks of sorted entries.

Layout of ``<number>.sst``::

    data block 0 | data block 1 | ... | index block | bloom block | footer (44 bytes)

Every block is framed as ``codec (1 byte) | body | crc32 of codec+body (4 bytes, LE)``.
A data block body (after decompression) is ``msgpack([keys, values, seqs])``: parallel
lists in key order, ``None`` values are tombstones, and ``seqs`` is ``None`` when every
entry is visible to every snapshot (then keys are unique). With ``seqs``, several versions
of one key may follow each other, newest first, and never straddle two blocks.

The index block is ``msgpack({...})`` with the last key, offset and length of each data
block and the table's facts (entry count, key range, newest sequence number, bloom
parameters). The bloom block is a blocked bloom filter: little-endian 64-bit words, and
each key sets 6 bits in the one word its crc32 picks. The footer holds a magic, the
format version, where the index and the bloom are, and its own crc32.
"""

from __future__ import annotations

import mmap
import os
import struct
import sys
import threading
import zlib
from array import array
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Sequence
from itertools import accumulate
from operator import add
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from alopex.errors import StorageCorruption

MAGIC = b"ALXLSMT\x00"
FORMAT_VERSION = 1
FOOTER = struct.Struct("<8sIQIQII4x")  # magic, version, index off/len, bloom off/len, crc
CRC = struct.Struct("<I")

CODEC_NONE, CODEC_LZ4, CODEC_ZSTD = 0, 1, 2
CODECS = {"none": CODEC_NONE, "lz4": CODEC_LZ4, "zstd": CODEC_ZSTD}

#: a lookup found nothing in this source (``None`` means "found a tombstone")
MISS: Any = object()

_MASK64 = 0xFFFFFFFFFFFFFFFF
_local = threading.local()


def _zstd() -> tuple[Any, Any]:
    """zstandard (de)compressors are not thread-safe: one pair per thread."""
    pair = getattr(_local, "zstd", None)
    if pair is None:
        import zstandard

        pair = _local.zstd = (zstandard.ZstdCompressor(level=3), zstandard.ZstdDecompressor())
    return pair


def compress(codec: int, body: bytes) -> bytes:
    if codec == CODEC_LZ4:
        import lz4.block

        return lz4.block.compress(body, store_size=True)  # type: ignore[no-any-return]
    if codec == CODEC_ZSTD:
        return _zstd()[0].compress(body)  # type: ignore[no-any-return]
    return body


def decompress(codec: int, body: bytes) -> bytes:
    if codec == CODEC_LZ4:
        import lz4.block

        return lz4.block.decompress(body)  # type: ignore[no-any-return]
    if codec == CODEC_ZSTD:
        return _zstd()[1].decompress(body)  # type: ignore[no-any-return]
    if codec == CODEC_NONE:
        return body
    raise ValueError(f"unknown codec {codec}")


def frame(codec: int, body: bytes) -> bytes:
    """``codec | compressed body | crc32``: the on-disk form of every block."""
    data = bytes([codec]) + compress(codec, body)
    return data + CRC.pack(zlib.crc32(data))


#: two bit positions (6 bits each) per 12-bit index: three lookups make a key's 6-bit mask
_PAIR_MASKS = [(1 << (c & 63)) | (1 << (c >> 6)) for c in range(4096)]
_GOLDEN = 0x9E3779B97F4A7C15


def bloom_hash(key: bytes) -> tuple[int, int]:
    """``(word hash, bit mask)`` of ``key`` for every table's bloom filter: computed once per
    read, so probing a table costs one word test."""
    h = zlib.crc32(key)
    bits = ((h * _GOLDEN) & _MASK64) >> 28  # the well-mixed high 36 bits
    masks = _PAIR_MASKS
    return h, masks[bits & 4095] | masks[(bits >> 12) & 4095] | masks[bits >> 24]


def table_name(number: int) -> str:
    return f"{number:06d}.sst"


# -- writing ------------------------------------------------------------------------------


class TableWriter:
    """Streams sorted chunks into a new table file; ``finish`` fsyncs and returns its facts.

    Chunks must arrive in key order; a chunk with ``seqs`` may hold several versions of
    a key (newest first) and the writer keeps them in one block.
    """

    def __init__(
        self, path: Path, *, block_size: int, codec: int, bloom_bits: int, has_seqs: bool
    ) -> None:
        self.path = path
        self._file = open(path, "wb")  # noqa: SIM115 - closed by finish/abort
        self._block_size = block_size
        self._codec = codec
        self._bloom_bits = bloom_bits
        self._has_seqs = has_seqs
        self._keys: list[bytes] = []
        self._values: list[bytes | None] = []
        self._seqs: list[int] = []
        self._buffered = 0
        self._offset = 0
        self._last_keys: list[bytes] = []
        self._offsets: list[int] = []
        self._lengths: list[int] = []
        self._hashes: list[int] = []
        self.entries = 0
        self.tombstones = 0
        self.max_seq = 0
        self.min_key: bytes | None = None
        self.max_key: bytes | None = None
        self.unique = True

    def add(
        self, keys: list[bytes], values: list[bytes | None], seqs: list[int] | None = None
    ) -> None:
        if not keys:
            return
        if self.min_key is None:
            self.min_key = keys[0]
        self.entries += len(keys)
        if None in values:
            self.tombstones += values.count(None)
        self._hashes.extend(map(zlib.crc32, keys))
        if self._has_seqs:
            assert seqs is not None
            self._seqs.extend(seqs)
            self.max_seq = max(self.max_seq, *seqs)
            if len(set(keys)) != len(keys) or keys[0] == self.max_key:
                self.unique = False  # (max_key: the previous chunk's last key)
        self.max_key = keys[-1]
        self._keys.extend(keys)
        self._values.extend(values)
        if None in values:
            self._buffered += sum(map(len, keys)) + sum(len(v) for v in values if v is not None)
        else:
            self._buffered += sum(map(len, keys)) + sum(map(len, values))  # type: ignore[arg-type]
        if self._buffered >= self._block_size:
            self._cut(final=False)

    def _cut(self, *, final: bool) -> None:
        """Write every full block in the buffer (and the rest too when ``final``)."""
        keys, values, seqs = self._keys, self._values, self._seqs
        n = len(keys)
        if not n:
            return
        size = self._block_size
        sizes = _entry_bytes(keys, values)
        start = 0
        while start < n:
            base = sizes[start - 1] if start else 0
            if not final and sizes[-1] - base < size:
                break
            end = min(n, bisect_left(sizes, base + size, start) + 1)
            while self._has_seqs and end < n and keys[end] == keys[end - 1]:
                end += 1  # the versions of one key stay in one block
            self._write_block(
                keys[start:end], values[start:end], seqs[start:end] if self._has_seqs else None
            )
            start = end
        self._buffered = sizes[-1] - (sizes[start - 1] if start else 0)
        del keys[:start], values[:start]
        if self._has_seqs:
            del seqs[:start]

    def _write_block(
        self, keys: list[bytes], values: list[bytes | None], seqs: list[int] | None
    ) -> None:
        data = frame(self._codec, msgpack.packb([keys, values, seqs]))
        self._file.write(data)
        self._last_keys.append(keys[-1])
        self._offsets.append(self._offset)
        self._lengths.append(len(data))
        self._offset += len(data)

    def finish(self) -> dict[str, Any]:
        """Write the index, bloom and footer, fsync, and return the table's facts."""
        self._cut(final=True)
        bloom, words = build_bloom(self._hashes, self._bloom_bits)
        index = {
            "last_keys": self._last_keys,
            "offsets": self._offsets,
            "lengths": self._lengths,
            "entries": self.entries,
            "tombstones": self.tombstones,
            "min_key": self.min_key,
            "max_key": self.max_key,
            "max_seq": self.max_seq,
            "unique": self.unique,
            "has_seqs": self._has_seqs,
            "bloom_words": words,
        }
        index_block = frame(self._codec, msgpack.packb(index))
        index_off = self._offset
        bloom_block = frame(CODEC_NONE, bloom)
        bloom_off = index_off + len(index_block)
        head = FOOTER.pack(
            MAGIC, FORMAT_VERSION, index_off, len(index_block), bloom_off, len(bloom_block), 0
        )
        crc = zlib.crc32(head[: FOOTER.size - 8])
        footer = FOOTER.pack(
            MAGIC, FORMAT_VERSION, index_off, len(index_block), bloom_off, len(bloom_block), crc
        )
        self._file.write(index_block + bloom_block + footer)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        size = bloom_off + len(bloom_block) + len(footer)
        return {
            "size": size,
            "entries": self.entries,
            "tombstones": self.tombstones,
            "min_key": self.min_key,
            "max_key": self.max_key,
        }

    def abort(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


def _entry_bytes(keys: list[bytes], values: list[bytes | None]) -> list[int]:
    """Running total of key + value bytes (C loops only, unless there are tombstones)."""
    if None in values:
        sizes = (len(k) + (0 if v is None else len(v)) for k, v in zip(keys, values, strict=True))
        return list(accumulate(sizes))
    return list(accumulate(map(add, map(len, keys), map(len, values))))  # type: ignore[arg-type]


def build_bloom(hashes: Sequence[int], bits_per_key: int) -> tuple[bytes, int]:
    """A blocked bloom filter over crc32 ``hashes``, built in NumPy: ``(bytes, words)``."""
    if not bits_per_key or not hashes:
        return b"", 0
    words = max(1, (len(hashes) * bits_per_key + 63) // 64)
    h = np.fromiter(hashes, dtype=np.uint64, count=len(hashes))
    bits = (h * np.uint64(_GOLDEN)) >> np.uint64(28)
    table = np.array(_PAIR_MASKS, dtype=np.uint64)
    twelve = np.uint64(4095)
    masks = table[bits & twelve] | table[(bits >> np.uint64(12)) & twelve]
    masks |= table[bits >> np.uint64(24)]
    filter_ = np.zeros(words, dtype="<u8")
    np.bitwise_or.at(filter_, (h % np.uint64(words)).astype(np.intp), masks)
    return filter_.tobytes(), words


# -- reading ------------------------------------------------------------------------------

Block = tuple[list[bytes], list[Any], list[int] | None]


class BlockCache:
    """Decoded data blocks, least recently used evicted first, bounded by raw bytes."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self.hits = 0
        self.misses = 0
        self._blocks: OrderedDict[tuple[int, int], tuple[Block, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int]) -> Block | None:
        # No lock: OrderedDict.get and move_to_end are atomic under the GIL; a block
        # evicted between the two is simply not moved. The counters are approximate.
        found = self._blocks.get(key)
        if found is None:
            self.misses += 1
            return None
        try:  # noqa: SIM105 - contextlib.suppress costs more than the lookup itself
            self._blocks.move_to_end(key)
        except KeyError:
            pass
        self.hits += 1
        return found[0]

    def put(self, key: tuple[int, int], block: Block, size: int) -> None:
        if size > self.capacity:
            return
        with self._lock:
            if key in self._blocks:
                return
            self._blocks[key] = (block, size)
            self.used += size
            while self.used > self.capacity:
                _, (_, evicted) = self._blocks.popitem(last=False)
                self.used -= evicted


class Table:
    """An open table file, read through ``mmap``; safe to share between threads.

    The file may be unlinked while readers still hold this object: the mapping keeps the
    data readable until the last reference goes (POSIX semantics).
    """

    def __init__(self, path: Path, number: int, cache: BlockCache | None) -> None:
        self.path = path
        self.number = number
        self._cache = cache
        try:
            with open(path, "rb") as file:
                self.size = os.fstat(file.fileno()).st_size
                if self.size < FOOTER.size:
                    raise self._corrupt(0, f"is {self.size} bytes, shorter than a footer")
                self._map = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        except FileNotFoundError:
            raise StorageCorruption(
                f"table file {str(path)!r} is listed in the MANIFEST but missing; restore it "
                "from a backup (the database cannot be opened without it)"
            ) from None
        foot = self.size - FOOTER.size
        magic, version, index_off, index_len, bloom_off, bloom_len, crc = FOOTER.unpack_from(
            self._map, foot
        )
        if magic != MAGIC or zlib.crc32(self._map[foot : foot + FOOTER.size - 8]) != crc:
            raise self._corrupt(foot, "has a damaged footer")
        if version != FORMAT_VERSION:
            raise self._corrupt(foot, f"has format version {version}, expected {FORMAT_VERSION}")
        index = msgpack.unpackb(self._block(index_off, index_len))
        self.last_keys: list[bytes] = index["last_keys"]
        self.offsets: list[int] = index["offsets"]
        self.lengths: list[int] = index["lengths"]
        self.entries: int = index["entries"]
        self.tombstones: int = index["tombstones"]
        self.min_key: bytes = index["min_key"]
        self.max_key: bytes = index["max_key"]
        self.max_seq: int = index["max_seq"]
        self.unique: bool = index["unique"]
        self.has_seqs: bool = index["has_seqs"]
        #: the bloom filter's words (None: no filter); probe with ``bloom_hash``
        self.bloom_words: int = index["bloom_words"]
        self.bloom: Sequence[int] | None = None
        if self.bloom_words:
            raw = self._block(bloom_off, bloom_len)
            if sys.byteorder == "little":
                self.bloom = memoryview(raw).cast("Q")
            else:
                self.bloom = array("Q", raw)
                self.bloom.byteswap()
        self.blocks = len(self.offsets)

    def _corrupt(self, offset: int, what: str) -> StorageCorruption:
        return StorageCorruption(
            f"table file {str(self.path)!r} {what} (offset {offset}); the database refuses "
            "to return data from it: restore the file from a backup"
        )

    def _block(self, offset: int, length: int) -> bytes:
        """The verified, decompressed body of the block at ``offset``."""
        data = self._map[offset : offset + length]
        if len(data) != length or length < 5:
            raise self._corrupt(offset, f"ends inside the block at offset {offset}")
        if zlib.crc32(memoryview(data)[:-4]) != CRC.unpack_from(data, length - 4)[0]:
            raise self._corrupt(offset, "has a block that fails its checksum")
        try:
            return decompress(data[0], data[1:-4])
        except Exception as err:
            raise self._corrupt(offset, f"has a block that does not decompress: {err}") from None

    def block(self, i: int) -> Block:
        """Data block ``i`` as ``(keys, values, seqs)``, from the cache when it is there."""
        cache = self._cache
        if cache is not None:
            found = cache.get((self.number, i))
            if found is not None:
                return found
        offset, length = self.offsets[i], self.lengths[i]
        body = self._block(offset, length)
        try:
            keys, values, seqs = msgpack.unpackb(body)
        except Exception as err:
            raise self._corrupt(offset, f"has a block that does not decode: {err}") from None
        block: Block = (keys, values, seqs)
        if cache is not None:
            cache.put((self.number, i), block, len(body))
        return block

    def find(self, key: bytes, seq: int) -> Any:
        """The newest version of ``key`` visible at ``seq`` (``None``: tombstone), or MISS;
        callers check the key range and the bloom filter first (``bloom_hash``)."""
        keys, values, seqs = self.block(bisect_left(self.last_keys, key))
        j = bisect_left(keys, key)
        if j == len(keys) or keys[j] != key:
            return MISS
        if seqs is None:
            return values[j]
        n = len(keys)
        while j < n and keys[j] == key:
            if seqs[j] <= seq:
                return values[j]
            j += 1
        return MISS

    def close(self) -> None:
        self._map.close()
