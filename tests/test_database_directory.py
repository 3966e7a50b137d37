"""Opening database directories: locks, bad paths, corruption, permissions, sharing.

In every failure case the error is an AlopexError subclass and the files on disk are
exactly as before.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import alopex

from .conftest import PERSISTENT_ENGINES


def config(engine: str) -> dict[str, object]:
    return {"storage": {"engine": engine}}


def fingerprint(root: Path) -> dict[str, str]:
    """Content hashes of every file except lock bookkeeping and RocksDB's info logs."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "LOCK" and not p.name.startswith("LOG")
    }


@pytest.fixture
def populated(tmp_path: Path, engine: str) -> Path:
    path = tmp_path / "db"
    with alopex.connect(path, config=config(engine)) as db:
        for i in range(100):
            db.put(b"k%03d" % i, b"v%03d" % i)
    return path


def test_reopen_keeps_data_and_engine(populated: Path, engine: str) -> None:
    with alopex.connect(populated) as db:  # the engine comes from the ALOPEX marker
        assert db.info()["engine"] == engine
        assert db.get(b"k042") == b"v042"
        assert len(list(db.scan())) == 100


def test_path_that_is_a_file(tmp_path: Path, engine: str) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("keep me")
    with pytest.raises(alopex.NotADatabase, match="is a file"):
        alopex.connect(path, config=config(engine))
    assert path.read_text() == "keep me"


def test_directory_of_another_program(tmp_path: Path, engine: str) -> None:
    path = tmp_path / "other"
    path.mkdir()
    (path / "photo.jpg").write_bytes(b"\xff\xd8 not ours")
    before = fingerprint(path)
    with pytest.raises(alopex.NotADatabase, match="photo.jpg"):
        alopex.connect(path, config=config(engine))
    assert fingerprint(path) == before
    assert sorted(p.name for p in path.iterdir()) == ["photo.jpg"]


def test_damaged_marker(populated: Path) -> None:
    (populated / "ALOPEX").write_text("{not json")
    before = fingerprint(populated)
    with pytest.raises(alopex.StorageCorruption, match="ALOPEX"):
        alopex.connect(populated)
    assert fingerprint(populated) == before


@pytest.mark.parametrize("victim", ["CURRENT", "MANIFEST"])
def test_corrupted_engine_files(populated: Path, victim: str) -> None:
    data = populated / "data"
    files = [p for p in data.iterdir() if p.name.startswith(victim)]
    if not files:
        pytest.skip(f"this engine keeps no {victim} file")
    for file in files:
        raw = bytearray(file.read_bytes())
        raw[: min(len(raw), 64)] = b"\x00garbage!" * 7 + b"\x00"
        file.write_bytes(bytes(raw))
    before = fingerprint(populated)
    with pytest.raises(alopex.StorageError) as caught:
        alopex.connect(populated)
    assert isinstance(caught.value, alopex.AlopexError)
    assert str(populated) in str(caught.value)
    assert fingerprint(populated) == before


@pytest.fixture
def readonly_runner() -> Iterator[list[str]]:
    """A command prefix that runs Python without write permission where chmod says so.

    Root ignores file modes, so as root the child drops the capabilities that let it.
    """
    if os.geteuid() != 0:
        yield [sys.executable]
        return
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to test permissions as root"
    yield [
        setpriv,
        "--inh-caps=-all",
        "--bounding-set=-dac_override,-dac_read_search,-fowner",
        "--",
        sys.executable,
    ]


def test_read_only_directory(readonly_runner: list[str], engine: str) -> None:
    root = Path(tempfile.mkdtemp(prefix="alopex-ro-"))
    try:
        path = root / "db"
        with alopex.connect(path, config=config(engine)) as db:
            db.put(b"k", b"v")
        (path / "LOCK").unlink()
        before = fingerprint(path)
        for p in [path, *path.rglob("*")]:
            p.chmod(0o555 if p.is_dir() else 0o444)
        for target in (path, root / "new-db"):
            root.chmod(0o555)
            code = (
                "import sys, alopex\n"
                "try:\n    alopex.connect(sys.argv[1])\n"
                "except alopex.ReadOnlyDatabase as err:\n    print('refused:', err)\n"
            )
            result = subprocess.run(
                [*readonly_runner, "-c", code, str(target)],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.stdout.startswith("refused:"), result.stdout + result.stderr
            assert "write access" in result.stdout
        assert fingerprint(path) == before
        assert not (root / "new-db").exists()
    finally:
        for p in [root, *root.rglob("*")]:
            p.chmod(0o755)
        shutil.rmtree(root)


HOLDER = """
import sys, time, alopex
db = alopex.connect(sys.argv[1])
db.put(b"holder", b"here")
print("open", flush=True)
time.sleep(120)
"""


def test_second_process_gets_database_locked_then_killed_holder_frees_it(
    populated: Path,
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(populated)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        with pytest.raises(alopex.DatabaseLocked) as caught:
            alopex.connect(populated)
        assert caught.value.pid == holder.pid
        assert str(holder.pid) in str(caught.value) and str(populated) in str(caught.value)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with alopex.connect(populated) as db:  # the killed holder's lock is gone
        assert db.get(b"holder") == b"here"


def test_connections_in_one_process_share_the_database(populated: Path, engine: str) -> None:
    first = alopex.connect(populated)
    second = alopex.connect(populated)
    first.put(b"shared", b"yes")
    assert second.get(b"shared") == b"yes"
    with pytest.raises(alopex.ConfigError, match="already open"):
        alopex.connect(populated, config={"storage": {"sync": "off"}})
    first.close()
    assert second.get(b"shared") == b"yes"  # still open for the second connection
    second.close()
    with pytest.raises(alopex.InterfaceError, match="closed"):
        second.get(b"shared")


def test_engine_mismatch_is_a_config_error(populated: Path) -> None:
    with pytest.raises(alopex.ConfigError, match="was created with storage engine"):
        alopex.connect(populated, config={"storage": {"engine": "memory-but-not"}})


def test_missing_plugin_in_config_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(alopex.PluginNotFound, match="pip install"):
        config = {"storage": {"engine": "lsm"}, "plugins": {"block": ["lsm"]}}  # as if missing
        alopex.connect(tmp_path / "db", config=config)
    assert not (tmp_path / "db").exists()


def test_there_is_a_persistent_engine() -> None:
    assert PERSISTENT_ENGINES, "install alopex[rocks]: no persistent storage engine found"
