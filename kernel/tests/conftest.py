"""Fixtures that install fake plugin distributions without pip (see conda's test-plugin)."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

FakeDist = Callable[..., Path]


@pytest.fixture
def fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDist]:
    """Create ``<name>-<version>.dist-info`` with an ``alopex`` entry point and its module.

    ``fake_dist("fake-store", "fakestore", "module source")`` makes the module
    ``fake_store_plugin`` importable and declares ``fakestore = fake_store_plugin``.
    """
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    created: list[str] = []
    monkeypatch.delenv("ALOPEX_PLUGINS", raising=False)
    monkeypatch.delenv("ALOPEX_DISABLE_PLUGIN_AUTOLOAD", raising=False)

    def make(dist: str, entry_point: str, source: str, version: str = "1.0") -> Path:
        module = dist.replace("-", "_") + "_plugin"
        (site / f"{module}.py").write_text(textwrap.dedent(source))
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[alopex]\n{entry_point} = {module}\n")
        created.append(module)
        importlib.invalidate_caches()
        return site

    yield make
    for module in created:
        sys.modules.pop(module, None)


STORE_PLUGIN = """
    from alopex import hookimpl
    from alopex.builtin.memory import MemoryEngine
    from alopex.registration import Backend, ConfigKey

    @hookimpl
    def alopex_storage_engines():
        return [Backend("{name}", MemoryEngine.open, "a fake engine for tests")]

    @hookimpl
    def alopex_config_keys():
        return [ConfigKey("storage.{name}", "depth", int, 3, "how deep")]
"""


def store_plugin(name: str) -> str:
    return STORE_PLUGIN.replace("{name}", name)
