"""Fixtures of the SQL engine tests: a connection on each storage engine.

``con`` is an open connection with the default PEP 249 behaviour (autocommit off) on
``:memory:`` (the memory engine), on a fresh ``lsm`` database (default settings) and on a
fresh ``rocks`` database in ``tmp_path``. The
rocks databases keep a column mirror of every table from its first row, so the suite runs
full scans through the mirror there and through row decoding on the memory engine.
``rocks_path`` and ``open_rocks`` serve the tests that need two connections to one
database or a reopen (``:memory:`` opens a new database on every connect).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import alopex

ROCKS = {"storage": {"engine": "rocks"}, "sql": {"column_mirror_rows": 1}}
LSM = {"storage": {"engine": "lsm"}}


@pytest.fixture(params=["memory", "lsm", "rocks"])
def con(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[alopex.Connection]:
    if request.param == "memory":
        connection = alopex.connect(":memory:")
    elif request.param == "lsm":
        connection = alopex.connect(tmp_path / "db", config=LSM)
    else:
        connection = alopex.connect(tmp_path / "db", config=ROCKS)
    yield connection
    connection.close()


@pytest.fixture
def rocks_path(tmp_path: Path) -> Path:
    """Where a rocks database for several connections (or a reopen) lives."""
    return tmp_path / "shared.db"


@pytest.fixture
def open_rocks(rocks_path: Path) -> Iterator[Callable[[], alopex.Connection]]:
    """Opens connections to ``rocks_path``; every one still open is closed at teardown."""
    opened: list[alopex.Connection] = []

    def opener() -> alopex.Connection:
        connection = alopex.connect(rocks_path, config=ROCKS)
        opened.append(connection)
        return connection

    yield opener
    for connection in reversed(opened):
        if not connection.closed:
            connection.close()
