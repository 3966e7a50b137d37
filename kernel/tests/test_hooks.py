"""Every hook, exercised through a real plugin (``spy_alopex_plugin``) and the kernel.

The meta-tests at the bottom keep this file and docs/plugins.md complete: each hookspec
needs a ``test_hook_<name>`` here and a documented signature there.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import alopex
from alopex import hookspecs
from alopex.cli import main
from alopex.contracts.index import IndexOptions
from alopex.plugins import PluginPolicy, PluginSet

ROOT = Path(__file__).resolve().parents[2]
SPY = "spy_alopex_plugin"


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    monkeypatch.setenv("ALOPEX_PLUGINS", SPY)
    import spy_alopex_plugin

    spy_alopex_plugin.calls.clear()
    yield spy_alopex_plugin


def test_hook_alopex_storage_engines(spy: object, tmp_path: Path) -> None:
    with alopex.connect(tmp_path / "db", config={"storage": {"engine": "spystore"}}) as db:
        db.put(b"k", b"v")
        assert db.get(b"k") == b"v"
    (options,) = spy.calls["storage"]  # type: ignore[attr-defined]
    assert options.path == tmp_path / "db" / "data"
    assert options.settings == {"label": "spy"}


def test_hook_alopex_index_providers(spy: object) -> None:
    plugins = PluginSet.load(PluginPolicy.from_settings({}))
    for name in ("flat", "spyflat"):
        index = plugins.select("index_providers", name).factory(IndexOptions(3, "l2"))
        index.add(np.array([1, 2, 3]), np.array([[0, 0, 0], [1, 0, 0], [5, 5, 5]], "f4"))
        ids, dist = index.search(np.array([[0.9, 0, 0]], "f4"), 2)
        assert ids.tolist() == [[2, 1]]
        assert dist[0, 0] == pytest.approx(0.01, abs=1e-5)
        ids, _ = index.search(np.array([[0.9, 0, 0]], "f4"), 2, allow=np.array([3]))
        assert ids.tolist() == [[3, -1]]
        index.remove(np.array([2]))
        assert len(index) == 2


def test_flat_index_persists_and_replaces(tmp_path: Path) -> None:
    plugins = PluginSet.load(PluginPolicy(autoload=False))
    make = plugins.select("index_providers", "flat").factory
    index = make(IndexOptions(2, "cosine"))
    index.add(np.arange(100), np.random.default_rng(0).normal(size=(100, 2)).astype("f4"))
    index.add(np.array([7]), np.array([[1.0, 0.0]], "f4"))  # replace id 7
    index.save(tmp_path / "flat.npz")
    again = make(IndexOptions(2, "cosine"))
    again.load(tmp_path / "flat.npz")
    assert len(again) == 100
    ids, dist = again.search(np.array([[2.0, 0.0]], "f4"), 1)
    assert ids[0, 0] == 7 and dist[0, 0] == pytest.approx(0.0, abs=1e-6)


def test_hook_alopex_transaction_managers(spy: object) -> None:
    with alopex.connect(":memory:", config={"transaction": {"manager": "spymvcc"}}) as db:
        with db.transaction() as tx:
            tx.put(b"a", b"1")
        db.transaction(readonly=True).rollback()
    assert spy.calls["begin"] == [False, True]  # type: ignore[attr-defined]


def test_hook_alopex_transports(spy: object) -> None:
    with alopex.connect(":memory:", config={"transport": {"name": "spytransport"}}) as db:
        db.put(b"a", b"1")
    assert spy.calls["transport"] == [":memory:"]  # type: ignore[attr-defined]


def test_hook_alopex_consensus_backends(spy: object) -> None:
    with alopex.connect(":memory:", config={"consensus": {"backend": "spyconsensus"}}) as db:
        db.put(b"a", b"1")
        with db.transaction() as tx:
            tx.put(b"b", b"2")
            tx.delete(b"a")
        assert db.info()["consensus"]["backend"] == "local"
    assert spy.calls["consensus"] == [{b"ka": b"1"}, {b"kb": b"2", b"ka": None}]  # type: ignore[attr-defined]


def test_hook_alopex_config_keys(spy: object) -> None:
    with pytest.raises(alopex.ConfigError, match="storage.spystore.label .* must be str"):
        alopex.connect(":memory:", config={"storage": {"spystore": {"label": 3}}})


def test_hook_alopex_cli_commands(spy: object) -> None:
    result = CliRunner().invoke(main, ["spy-hello", "fox"])
    assert result.exit_code == 0, result.output
    assert result.output == "hello fox from a plugin\n"
    assert "spy-hello" in CliRunner().invoke(main, ["--help"]).output


# -- meta-tests ---------------------------------------------------------------------------


def hookspec_names() -> list[str]:
    return sorted(
        name
        for name, obj in vars(hookspecs).items()
        if name.startswith("alopex_") and inspect.isfunction(obj)
    )


def test_hooks_are_prefixed_and_typed() -> None:
    names = hookspec_names()
    assert len(names) == 7
    for name in names:
        function = getattr(hookspecs, name)
        assert function.__doc__, f"{name} has no docstring"
        assert inspect.signature(function).return_annotation != inspect.Signature.empty


@pytest.mark.parametrize("name", hookspec_names())
def test_hook_is_tested(name: str) -> None:
    assert f"test_hook_{name}" in globals(), f"add test_hook_{name} to {__file__}"


@pytest.mark.parametrize("name", hookspec_names())
def test_hook_is_documented(name: str) -> None:
    docs = (ROOT / "docs" / "plugins.md").read_text()
    returns = inspect.signature(getattr(hookspecs, name)).return_annotation
    assert re.search(rf"def {name}\(", docs), f"document {name} in docs/plugins.md"
    assert f"def {name}() -> {returns}" in docs, f"docs/plugins.md shows an outdated {name}"
