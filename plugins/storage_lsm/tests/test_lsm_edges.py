"""Edges a review found: a damaged WAL length, compact() with nothing to merge, and a key's
snapshot versions meeting a compaction chunk boundary at a block boundary."""

from __future__ import annotations

from pathlib import Path

import pytest

from alopex.contracts.storage import StorageOptions
from alopex.errors import StorageCorruption
from alopex_storage_lsm.engine import LsmEngine
from alopex_storage_lsm.files import RECORD, encode_record


def open_lsm(path: Path, sync: str = "full", **settings: object) -> LsmEngine:
    return LsmEngine.open(StorageOptions(path, sync, settings))


def test_a_damaged_wal_length_fails_loudly_instead_of_dropping_commits(tmp_path: Path) -> None:
    engine = open_lsm(tmp_path)
    for i in range(10):
        engine.write({b"key%d" % i: b"value%d" % i}, durable=True)
    engine.close()
    (wal,) = tmp_path.glob("*.wal")
    data = bytearray(wal.read_bytes())
    record = 0
    for _ in range(2):  # damage the third record's length so it points past the end
        record += RECORD.size + int.from_bytes(data[record : record + 4], "little")
    data[record + 3] ^= 0x01
    wal.write_bytes(bytes(data))
    with pytest.raises(StorageCorruption, match=rf"{wal.name}.*length.*offset {record}"):
        open_lsm(tmp_path)
    assert wal.read_bytes() == bytes(data)  # nothing truncated


@pytest.mark.parametrize("rows", [0, 100])
def test_compact_returns_when_there_is_nothing_to_merge(tmp_path: Path, rows: int) -> None:
    engine = open_lsm(tmp_path)
    engine.write({b"k%03d" % i: b"v" for i in range(rows)}, durable=False)
    engine.compact()  # one run without tombstones (or none): returns at once
    engine.compact()
    assert len(list(engine.scan())) == rows
    engine.close()


def test_snapshot_versions_stay_in_one_block_through_compaction(tmp_path: Path) -> None:
    settings = {"compression": "none", "block_kb": 1}
    engine = open_lsm(tmp_path, "normal", **settings)
    keys = [b"k%05d" % i for i in range(6000)]
    old, new = b"o" * 22, b"n" * 22
    engine.write(dict.fromkeys(keys, old), durable=False)
    engine.flush()
    snapshot = engine.snapshot()
    # 4,096 entries into the merge (the first chunk's end) falls on a block boundary
    # with these sizes; key 4095's two versions sit right there
    engine.write(dict.fromkeys(keys[4095:4096], new), durable=False)
    engine.flush()
    engine.compact()  # keeps both versions of those keys for the snapshot
    assert all(snapshot.get(x) == old for x in keys)
    assert list(snapshot.scan()) == [(k, old) for k in keys]
    assert list(engine.scan(keys[4094], keys[4097])) == [
        (keys[4094], old),
        (keys[4095], new),
        (keys[4096], old),
    ]
    snapshot.close()
    engine.write({b"zzz": b"1"}, durable=False)
    engine.flush()
    engine.compact()  # no snapshot now: one version per key
    assert engine.get(keys[4095]) == new
    engine.close()
    engine = open_lsm(tmp_path, "normal", **settings)
    assert engine.get(keys[4095]) == new
    assert len(list(engine.scan())) == 6001
    engine.close()


def test_a_missing_wal_between_others_fails_loudly(tmp_path: Path) -> None:
    engine = open_lsm(tmp_path)
    engine.write({b"a": b"1"}, durable=True)  # sequence 1, in the first WAL
    engine.close()
    (first,) = tmp_path.glob("*.wal")
    # a later WAL whose records start at sequence 4: the one holding 2 and 3 is gone
    later = first.with_name(f"{int(first.stem) + 5:06d}.wal")
    later.write_bytes(encode_record(4, {b"d": b"4"}) + encode_record(5, {b"e": b"5"}))
    with pytest.raises(StorageCorruption, match=rf"{later.name}.*sequence 4.*is 1.*missing"):
        open_lsm(tmp_path)
    later.write_bytes(encode_record(2, {b"b": b"2"}) + encode_record(3, {b"c": b"3"}))
    engine = open_lsm(tmp_path)  # contiguous again: every batch is back
    assert list(engine.scan()) == [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]
    engine.close()
