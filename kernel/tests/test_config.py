"""Config from TOML files and dicts, validated against plugin-declared keys."""

from __future__ import annotations

from pathlib import Path

import pytest

import alopex
from alopex.config import read_config, validate
from alopex.plugins import PluginPolicy, PluginSet

from .conftest import FakeDist, store_plugin


def settings_for(config: object) -> object:
    raw = read_config(config)  # type: ignore[arg-type]
    return validate(raw, PluginSet.load(PluginPolicy(autoload=False)).config_keys)


def test_defaults_come_from_the_embedded_mode() -> None:
    settings = settings_for(None)
    assert settings["storage.engine"] == "rocks"  # type: ignore[index]
    assert settings["storage.sync"] == "full"  # type: ignore[index]


def test_memory_target_uses_the_memory_engine() -> None:
    with alopex.connect(":memory:") as db:
        assert db.info()["engine"] == "memory"
        db.put(b"k", b"v")
        assert db.get(b"k") == b"v"


def test_dict_overrides_defaults() -> None:
    settings = settings_for({"storage": {"sync": "normal"}})
    assert settings["storage.sync"] == "normal"  # type: ignore[index]
    assert "storage.sync" in settings.explicit  # type: ignore[attr-defined]


def test_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "alopex.toml"
    path.write_text('[storage]\nsync = "off"\n')
    assert settings_for(str(path))["storage.sync"] == "off"  # type: ignore[index]


def test_unknown_key_names_key_file_and_allowed(tmp_path: Path) -> None:
    path = tmp_path / "alopex.toml"
    path.write_text('[storage]\nsynk = "full"\n')
    with pytest.raises(alopex.ConfigError) as caught:
        settings_for(str(path))
    message = str(caught.value)
    assert "storage.synk" in message and str(path) in message
    assert "engine, sync" in message and "did you mean 'sync'" in message


def test_unknown_section() -> None:
    with pytest.raises(alopex.ConfigError, match="'storge'"):
        settings_for({"storge": {"engine": "rocks"}})


def test_bad_type_names_expected_type() -> None:
    with pytest.raises(alopex.ConfigError, match="storage.sync .* must be str, got 1"):
        settings_for({"storage": {"sync": 1}})
    with pytest.raises(alopex.ConfigError, match="plugins.autoload"):
        settings_for({"plugins": {"autoload": "yes"}})
    with pytest.raises(alopex.ConfigError, match="list of strings"):
        settings_for({"plugins": {"block": ["a", 2]}})


def test_bad_choice_lists_choices() -> None:
    with pytest.raises(alopex.ConfigError, match="'full', 'normal', 'off'"):
        settings_for({"storage": {"sync": "sometimes"}})


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[storage\nsync=")
    with pytest.raises(alopex.ConfigError, match="not valid TOML"):
        settings_for(str(bad))
    with pytest.raises(alopex.ConfigError, match="does not exist"):
        settings_for(str(tmp_path / "missing.toml"))
    with pytest.raises(alopex.ConfigError, match="TOML file path or a dict"):
        settings_for(42)


def test_unknown_mode() -> None:
    with pytest.raises(alopex.ConfigError, match="known modes: embedded"):
        settings_for({"mode": "galactic"})


def test_plugin_sections_are_validated_when_the_plugin_is_loaded(fake_dist: FakeDist) -> None:
    fake_dist("fake-store", "fakestore", store_plugin("fakestore"))
    raw = read_config({"storage": {"engine": "fakestore", "fakestore": {"depth": 5}}})
    settings = validate(raw, PluginSet.load().config_keys)
    assert settings.section("storage.fakestore") == {"depth": 5}
    with pytest.raises(alopex.ConfigError, match="storage.fakestore.depth .* must be int"):
        validate(
            read_config({"storage": {"fakestore": {"depth": "deep"}}}), PluginSet.load().config_keys
        )
    with pytest.raises(alopex.ConfigError, match="known only while that plugin is installed"):
        validate(
            read_config({"storage": {"fakestore": {"depth": 5}}}),
            PluginSet.load(PluginPolicy(autoload=False)).config_keys,
        )


def test_memory_engine_refuses_a_path(tmp_path: Path) -> None:
    with pytest.raises(alopex.ConfigError, match="':memory:'"):
        alopex.connect(tmp_path / "db", config={"storage": {"engine": "memory"}})
    assert not (tmp_path / "db").exists()
