"""Cross-plugin fixtures: every installed persistent storage engine."""

from __future__ import annotations

import pytest

from alopex.plugins import PluginSet

PERSISTENT_ENGINES = sorted(
    name
    for name, backend in PluginSet.load().storage_engines.items()
    if "persistent" in backend.capabilities
)


@pytest.fixture(params=PERSISTENT_ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """The name of each installed persistent engine in turn."""
    return str(request.param)
