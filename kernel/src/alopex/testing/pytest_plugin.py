"""pytest plugin shipped with alopex-kernel: fixtures for tests of Alopex applications."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import alopex


@pytest.fixture
def alopex_memory_db() -> Iterator[alopex.Connection]:
    """A fresh ``:memory:`` database, closed after the test."""
    with alopex.connect(":memory:") as db:
        yield db
