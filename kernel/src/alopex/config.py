"""Configuration: a TOML file or a dict, over a mode's defaults, checked against the keys
plugins declare.

The result is an immutable :class:`Settings`; nothing opens until it validates.
"""

from __future__ import annotations

import copy
import difflib
import importlib.resources
import os
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from alopex.errors import ConfigError
from alopex.registration import ConfigKey

ConfigSource = str | os.PathLike[str] | Mapping[str, Any] | None
DEFAULT_MODE = "embedded"


@attrs.frozen
class RawConfig:
    """Config as read, before validation: the data, where it came from, what the user set."""

    data: dict[str, Any]
    source: str
    explicit: frozenset[str]


@attrs.frozen
class Settings:
    """Validated settings by dotted section: ``settings.section("storage")["sync"]``."""

    sections: Mapping[str, Mapping[str, Any]]
    source: str
    #: dotted keys the user set (rather than inherited from defaults)
    explicit: frozenset[str] = frozenset()

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.sections.get(name, {}))

    def __getitem__(self, dotted: str) -> Any:
        section, _, name = dotted.rpartition(".")
        try:
            return self.sections[section][name]
        except KeyError:
            raise KeyError(dotted) from None


def mode_defaults(mode: str) -> dict[str, Any]:
    """The defaults of a deployment mode, from ``alopex/modes/<mode>.toml``."""
    resource = importlib.resources.files("alopex") / "modes" / f"{mode}.toml"
    if not resource.is_file():
        modes = sorted(
            p.name.removesuffix(".toml")
            for p in (importlib.resources.files("alopex") / "modes").iterdir()
            if p.name.endswith(".toml")
        )
        raise ConfigError(f"unknown mode {mode!r}; known modes: {', '.join(modes)}")
    return tomllib.loads(resource.read_text(encoding="utf-8"))


def read_config(config: ConfigSource) -> RawConfig:
    """Read user config (a TOML path or a dict) and lay it over its mode's defaults."""
    if config is None:
        user: dict[str, Any] = {}
        source = "<defaults>"
    elif isinstance(config, Mapping):
        user = copy.deepcopy(dict(config))
        source = "<config dict>"
    elif isinstance(config, (str, os.PathLike)):
        source = os.fspath(config)
        try:
            with open(source, "rb") as file:
                user = tomllib.load(file)
        except FileNotFoundError:
            raise ConfigError(f"config file {source!r} does not exist") from None
        except IsADirectoryError:
            raise ConfigError(f"config {source!r} is a directory, not a TOML file") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"config file {source!r} is not valid TOML: {err}") from err
    else:
        raise ConfigError(f"config must be a TOML file path or a dict, not {type(config).__name__}")
    mode = user.get("mode", DEFAULT_MODE)
    if not isinstance(mode, str):
        raise ConfigError(f"'mode' in {source} must be a string, got {mode!r}")
    data = _merge(mode_defaults(mode), user)
    return RawConfig(data, source, frozenset(_dotted_keys(user)))


def validate(raw: RawConfig, keys: Sequence[ConfigKey]) -> Settings:
    """Check every key against the declared ``keys`` and fill in their defaults."""
    declared: dict[str, dict[str, ConfigKey]] = {}
    for key in keys:
        declared.setdefault(key.section, {})[key.name] = key
    sections: dict[str, dict[str, Any]] = {
        section: {name: key.default for name, key in names.items()}
        for section, names in declared.items()
    }

    def walk(table: Mapping[str, Any], prefix: str) -> None:
        for name, value in table.items():
            dotted = f"{prefix}.{name}" if prefix else name
            if not prefix and name == "mode":
                continue
            if isinstance(value, dict) and _is_section(dotted, declared):
                walk(value, dotted)
                continue
            key = declared.get(prefix, {}).get(name)
            if key is None:
                raise ConfigError(_unknown_key_message(dotted, prefix, declared, raw.source))
            sections[prefix][name] = _check_value(key, value, raw.source)

    walk(raw.data, "")
    return Settings(sections, raw.source, raw.explicit)


def _check_value(key: ConfigKey, value: Any, source: str) -> Any:
    expected = key.type
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if ok and expected is list:
        ok = all(isinstance(item, str) for item in value)
    if not ok:
        kind = "a list of strings" if expected is list else expected.__name__
        raise ConfigError(
            f"{key.dotted} in {source} must be {kind}, got {value!r} "
            f"({type(value).__name__}): {key.description}"
        )
    if key.choices and value not in key.choices:
        raise ConfigError(
            f"{key.dotted} in {source} must be one of "
            f"{', '.join(repr(c) for c in key.choices)}, got {value!r}"
        )
    return value


def _is_section(dotted: str, declared: Mapping[str, Any]) -> bool:
    return any(s == dotted or s.startswith(dotted + ".") for s in declared)


def _unknown_key_message(
    dotted: str, prefix: str, declared: Mapping[str, Mapping[str, ConfigKey]], source: str
) -> str:
    allowed = sorted(declared.get(prefix, {}))
    subsections = sorted(
        s.removeprefix(prefix + ".") if prefix else s
        for s in declared
        if (s.startswith(prefix + ".") if prefix else True) and s != prefix
    )
    where = f"[{prefix}]" if prefix else "the top level"
    message = f"unknown config key {dotted!r} in {source}; allowed in {where}: "
    message += ", ".join(allowed + [f"[{s}]" for s in subsections]) or "nothing"
    close = difflib.get_close_matches(dotted.rpartition(".")[2], allowed + subsections, n=1)
    if close:
        message += f" (did you mean {close[0]!r}?)"
    if prefix or subsections:
        message += ". A plugin's section is known only while that plugin is installed."
    return message


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for name, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(name), dict):
            merged[name] = _merge(merged[name], value)
        else:
            merged[name] = value
    return merged


def _dotted_keys(table: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for name, value in table.items():
        dotted = f"{prefix}.{name}" if prefix else name
        keys.extend(_dotted_keys(value, dotted) if isinstance(value, Mapping) else [dotted])
    return keys
