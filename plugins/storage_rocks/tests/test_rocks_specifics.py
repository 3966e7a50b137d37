"""What the rocks engine does beyond the shared contract: sync modes and settings."""

from __future__ import annotations

from pathlib import Path

import pytest

import alopex


def wal_bytes(db_path: Path) -> int:
    return sum(p.stat().st_size for p in (db_path / "data").glob("*.log"))


@pytest.mark.parametrize(("sync", "logged"), [("full", True), ("normal", True), ("off", False)])
def test_sync_mode_decides_whether_commits_reach_the_wal(
    tmp_path: Path, sync: str, logged: bool
) -> None:
    path = tmp_path / "db"
    with alopex.connect(path, config={"storage": {"engine": "rocks", "sync": sync}}) as db:
        before = wal_bytes(path)
        with db.transaction() as tx:
            for i in range(100):
                tx.put(b"k%03d" % i, b"x" * 100)
        assert (wal_bytes(path) > before) is logged


def test_engine_settings_are_validated_and_applied(tmp_path: Path) -> None:
    config = {"storage": {"engine": "rocks", "rocks": {"compression": "zstd", "block_cache_mb": 8}}}
    with alopex.connect(tmp_path / "db", config=config) as db:
        db.put(b"k", b"v")
        assert db.info()["storage"]["engine"] == "rocks"
    options = next((tmp_path / "db" / "data").glob("OPTIONS-*")).read_text()
    assert "compression=kZSTD" in options
    with pytest.raises(alopex.ConfigError, match="'none', 'lz4', 'zstd'"):
        alopex.connect(tmp_path / "db2", config={"storage": {"rocks": {"compression": "gz"}}})
