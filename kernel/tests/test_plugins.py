"""Entry-point discovery, allow/block policy, failures and backend selection."""

from __future__ import annotations

from pathlib import Path

import pytest

import alopex
from alopex.plugins import PluginPolicy, PluginSet

from .conftest import FakeDist, store_plugin

BROKEN = "raise ImportError('this plugin is broken on purpose')\n"


def test_builtins_are_registered_through_hooks() -> None:
    plugins = PluginSet.load(PluginPolicy(autoload=False))
    assert set(plugins.infos) == {"builtin"}
    assert "memory" in plugins.storage_engines
    assert plugins.storage_engines["memory"].plugin == "builtin"
    assert plugins.provided_by("builtin") == [
        "storage:memory",
        "index:flat",
        "transaction:mvcc",
        "transport:embedded",
        "consensus:local",
    ]


def test_entry_point_plugin_is_loaded(fake_dist: FakeDist) -> None:
    fake_dist("fake-store", "fakestore", store_plugin("fakestore"))
    plugins = PluginSet.load()
    assert plugins.infos["fakestore"].distribution == "fake-store"
    assert plugins.infos["fakestore"].version == "1.0"
    assert plugins.select("storage_engines", "FakeStore").plugin == "fakestore"


def test_broken_autoloaded_plugin_warns_and_is_skipped(fake_dist: FakeDist) -> None:
    fake_dist("fake-broken", "broken", BROKEN)
    fake_dist("fake-store", "fakestore", store_plugin("fakestore"))
    with pytest.warns(alopex.PluginWarning, match="broken"):
        plugins = PluginSet.load()
    assert "broken" in plugins.failed and "broken" not in plugins.infos
    assert "fakestore" in plugins.storage_engines


def test_broken_plugin_named_in_config_is_fatal(fake_dist: FakeDist, tmp_path: Path) -> None:
    fake_dist("fake-broken", "broken", BROKEN)
    with pytest.raises(alopex.PluginError, match="fake-broken") as caught:
        alopex.connect(":memory:", config={"plugins": {"allow": ["broken"]}})
    assert isinstance(caught.value.__cause__, ImportError)


def test_backend_of_a_broken_plugin_names_the_cause(fake_dist: FakeDist) -> None:
    fake_dist("fake-broken", "broken", BROKEN)
    with pytest.warns(alopex.PluginWarning):
        plugins = PluginSet.load()
    with pytest.raises(alopex.PluginNotFound, match="failed to load") as caught:
        plugins.select("storage_engines", "broken")
    assert isinstance(caught.value.__cause__, ImportError)


def test_unknown_name_lists_installed_and_the_extra_to_install() -> None:
    plugins = PluginSet.load(PluginPolicy(autoload=False))
    with pytest.raises(alopex.PluginNotFound) as caught:
        plugins.select("storage_engines", "lsm")
    message = str(caught.value)
    assert "installed: memory" in message
    assert "pip install 'alopex[lsm]'" in message
    with pytest.raises(alopex.PluginNotFound, match="did you mean 'memory'"):
        plugins.select("storage_engines", "memroy")


def test_two_providers_of_one_name_name_both_distributions(fake_dist: FakeDist) -> None:
    fake_dist("fake-one", "one", store_plugin("twin"))
    fake_dist("fake-two", "two", store_plugin("twin").replace("storage.twin", "storage.twin2"))
    plugins = PluginSet.load()
    with pytest.raises(alopex.PluginConflict) as caught:
        plugins.select("storage_engines", "twin")
    assert "fake-one" in str(caught.value) and "fake-two" in str(caught.value)


def test_block_list_keeps_a_plugin_out(fake_dist: FakeDist) -> None:
    fake_dist("fake-store", "fakestore", store_plugin("fakestore"))
    plugins = PluginSet.load(PluginPolicy(block=("fakestore",)))
    assert "fakestore" not in plugins.infos
    with pytest.raises(alopex.PluginNotFound):
        plugins.select("storage_engines", "fakestore")


def test_allow_list_loads_only_those(fake_dist: FakeDist) -> None:
    fake_dist("fake-a", "a", store_plugin("a"))
    fake_dist("fake-b", "b", store_plugin("b"))
    plugins = PluginSet.load(PluginPolicy(allow=("b",)))
    assert {"a", "b"} & set(plugins.infos) == {"b"}


def test_allow_list_names_a_missing_plugin(fake_dist: FakeDist) -> None:
    with pytest.raises(alopex.PluginNotFound, match="not installed"):
        PluginSet.load(PluginPolicy(allow=("no_such_plugin_anywhere",)))


def test_environment_controls_loading(fake_dist: FakeDist, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dist("fake-a", "a", store_plugin("a"))
    fake_dist("fake-b", "b", store_plugin("b"))
    monkeypatch.setenv("ALOPEX_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert set(PluginSet.load(PluginPolicy.from_settings({})).infos) == {"builtin"}
    monkeypatch.setenv("ALOPEX_PLUGINS", "a")
    assert set(PluginSet.load(PluginPolicy.from_settings({})).infos) == {"builtin", "a"}


def test_a_module_path_can_be_allowed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "local_alopex_plugin.py").write_text(
        store_plugin("localstore").replace("\n    ", "\n")
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins = PluginSet.load(PluginPolicy(allow=("local_alopex_plugin",)))
    assert plugins.infos["local_alopex_plugin"].distribution == "(module)"
    assert "localstore" in plugins.storage_engines


def test_missing_engine_in_config_touches_nothing(tmp_path: Path) -> None:
    target = tmp_path / "db"
    config = {"storage": {"engine": "lsm"}, "plugins": {"block": ["lsm"]}}  # as if missing
    with pytest.raises(alopex.PluginNotFound, match="pip install 'alopex\\[lsm\\]'"):
        alopex.connect(target, config=config)
    assert not target.exists()
