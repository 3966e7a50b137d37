"""The ``alopex`` command line: plugins, database facts, key-value access, demo.

Plugins add commands through the ``alopex_cli_commands`` hook.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

import alopex
from alopex.cli.shell import shell, sql
from alopex.config import read_config, validate
from alopex.errors import AlopexError
from alopex.plugins import PluginPolicy, PluginSet

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

config_option = click.option(
    "--config",
    "-c",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML config file laid over modes/embedded.toml.",
)


def reports_errors(func: F) -> F:
    """Turn AlopexError into one red line and exit status 1, not a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except AlopexError as err:
            err_console.print(
                Text("error: ", style="bold red") + Text(f"{type(err).__name__}: {err}")
            )
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


class AlopexCLI(click.Group):
    """Adds plugin commands lazily, so ``alopex --help`` lists them too."""

    def _plugin_commands(self) -> dict[str, click.Command]:
        try:
            plugins = PluginSet.load(PluginPolicy.from_settings({}))
        except AlopexError:
            return {}
        return {cmd.name: cmd for cmd in plugins.cli_commands() if cmd.name}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._plugin_commands()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, cmd_name) or self._plugin_commands().get(cmd_name)


@click.group(cls=AlopexCLI)
@click.version_option(alopex.__version__, prog_name="alopex")
def main() -> None:
    """Alopex: one engine for SQL tables, vectors and analytics."""


# -- SQL: the interactive shell and one-shot statements (see shell.py) --------------------

main.add_command(shell)
main.add_command(sql)


# -- plugins ----------------------------------------------------------------------------


@main.command()
@config_option
@reports_errors
def plugins(config: str | None) -> None:
    """List installed plugins, what each provides and which are active for a config."""
    raw = read_config(config)
    loaded = PluginSet.load(PluginPolicy.from_settings(raw.data.get("plugins", {})))
    settings = validate(raw, loaded.config_keys)
    active = {
        loaded.select("storage_engines", settings["storage.engine"]).plugin,
        loaded.select("transaction_managers", settings["transaction.manager"]).plugin,
        loaded.select("consensus_backends", settings["consensus.backend"]).plugin,
        loaded.select("transports", settings["transport.name"]).plugin,
    }
    table = Table(title=f"Alopex plugins (config: {settings.source})")
    for column in ("plugin", "distribution", "version", "provides", "active"):
        table.add_column(column)
    for name, info in sorted(loaded.infos.items()):
        provides = ", ".join(loaded.provided_by(name)) or "-"
        table.add_row(
            name, info.distribution, info.version, provides, "yes" if name in active else ""
        )
    for name, error in sorted(loaded.failed.items()):
        table.add_row(name, "?", "?", Text(f"failed to load: {error!r}", style="red"), "")
    console.print(table)
    console.print(
        f"storage.engine = {settings['storage.engine']!r}, "
        f"storage.sync = {settings['storage.sync']!r}",
        highlight=False,
    )


# -- info -------------------------------------------------------------------------------


@main.command()
@click.argument("path", type=click.Path())
@config_option
@reports_errors
def info(path: str, config: str | None) -> None:
    """Show facts about the database at PATH: engine, durability, sizes."""
    _require_existing(path)
    with alopex.connect(path, config=config) as db:
        facts = db.info()
    table = Table(title=f"Alopex database {path}", show_header=False)
    table.add_column("fact", style="bold")
    table.add_column("value")
    for key, value in _flatten(facts):
        table.add_row(key, Text(str(value)))
    console.print(table)


def _flatten(facts: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in facts.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _require_existing(path: str) -> None:
    if not Path(path).exists():
        raise click.ClickException(f"no database at {path!r}")


# -- key-value --------------------------------------------------------------------------


@main.group()
def kv() -> None:
    """Read and write keys. Keys and values are UTF-8 text, or hex with --hex."""


hex_option = click.option("--hex", "as_hex", is_flag=True, help="Keys and values are hex.")


def _encode(text: str, as_hex: bool) -> bytes:
    if not as_hex:
        return text.encode()
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not hex") from None


def _show(data: bytes, as_hex: bool) -> str:
    if not as_hex:
        try:
            text = data.decode()
            if text.isprintable():
                return text
        except UnicodeDecodeError:
            pass
    return data.hex() if as_hex else f"0x{data.hex()}"


@kv.command("get")
@click.argument("path", type=click.Path())
@click.argument("key")
@hex_option
@config_option
@reports_errors
def kv_get(path: str, key: str, as_hex: bool, config: str | None) -> None:
    """Print the value of KEY (exit status 1 if absent)."""
    _require_existing(path)
    with alopex.connect(path, config=config) as db:
        value = db.get(_encode(key, as_hex))
    if value is None:
        err_console.print(f"key {key!r} not found")
        sys.exit(1)
    click.echo(_show(value, as_hex))


@kv.command("put")
@click.argument("path", type=click.Path())
@click.argument("key")
@click.argument("value")
@hex_option
@config_option
@reports_errors
def kv_put(path: str, key: str, value: str, as_hex: bool, config: str | None) -> None:
    """Store VALUE under KEY (creates the database if missing)."""
    with alopex.connect(path, config=config) as db:
        db.put(_encode(key, as_hex), _encode(value, as_hex))


@kv.command("delete")
@click.argument("path", type=click.Path())
@click.argument("key")
@hex_option
@config_option
@reports_errors
def kv_delete(path: str, key: str, as_hex: bool, config: str | None) -> None:
    """Remove KEY."""
    _require_existing(path)
    with alopex.connect(path, config=config) as db:
        db.delete(_encode(key, as_hex))


@kv.command("scan")
@click.argument("path", type=click.Path())
@click.option("--start", default="", help="First key (inclusive).")
@click.option("--end", default=None, help="Stop before this key.")
@click.option("--prefix", default=None, help="Only keys with this prefix.")
@click.option("--reverse", is_flag=True, help="Descending key order.")
@click.option("--limit", type=int, default=100, show_default=True, help="At most this many.")
@hex_option
@config_option
@reports_errors
def kv_scan(
    path: str,
    start: str,
    end: str | None,
    prefix: str | None,
    reverse: bool,
    limit: int,
    as_hex: bool,
    config: str | None,
) -> None:
    """List keys and values in key order."""
    _require_existing(path)
    table = Table("key", "value")
    with alopex.connect(path, config=config) as db:
        pairs = db.scan(
            _encode(start, as_hex),
            None if end is None else _encode(end, as_hex),
            prefix=None if prefix is None else _encode(prefix, as_hex),
            reverse=reverse,
        )
        for n, (key, value) in enumerate(pairs):
            if n >= limit:
                break
            table.add_row(Text(_show(key, as_hex)), Text(_show(value, as_hex)))
    console.print(table)


# -- demo -------------------------------------------------------------------------------


@main.command()
@click.argument("path", type=click.Path(), default="alopex-demo.db")
@config_option
@reports_errors
def demo(path: str, config: str | None) -> None:
    """A short tour on a local database at PATH (default ./alopex-demo.db)."""
    console.rule("[bold]Alopex demo")
    with alopex.connect(path, config=config) as db:
        console.print(f"opened [bold]{path}[/] with engine [bold]{db.info()['engine']}[/]")
        with db.transaction() as tx:
            for n, (name, lang) in enumerate(
                [("fox", "en"), ("renard", "fr"), ("fuchs", "de"), ("kitsune", "ja")]
            ):
                tx.put(f"animal:{n:03d}".encode(), f"{name} ({lang})".encode())
        console.print("committed 4 keys in one transaction")
        table = Table("key", "value", title="scan prefix=animal:")
        for key, value in db.scan(prefix=b"animal:"):
            table.add_row(key.decode(), value.decode())
        console.print(table)
        reader = db.transaction(readonly=True)
        reader.get(b"animal:000")  # the snapshot is taken at the first read
        db.put(b"animal:000", b"arctic fox (en)")
        console.print(
            "a snapshot taken before an update still reads "
            f"[bold]{(reader.get(b'animal:000') or b'').decode()}[/]; a new read sees "
            f"[bold]{(db.get(b'animal:000') or b'').decode()}[/]"
        )
        reader.rollback()
        _sql_tour(db)
    console.print(
        f"next: [bold]alopex shell {path}[/] (interactive SQL), [bold]alopex kv scan {path}[/], "
        f"[bold]alopex info {path}[/]"
    )


def _sql_tour(db: alopex.Connection) -> None:
    """The SQL half of the demo: the overview's users table, an aggregate, a window."""
    console.rule("SQL")
    db.autocommit = True
    db.execute("DROP TABLE IF EXISTS users")
    db.execute(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, "
        "created_at TIMESTAMP)"
    )
    db.executemany(
        "INSERT INTO users (id, name, email, created_at) VALUES (?, ?, ?, ?)",
        [
            (1, "Alice", "alice@example.com", "2025-01-02 10:00:00"),
            (2, "Bob", "bob@example.org", "2025-01-03 11:30:00"),
            (3, "Carol", "carol@example.com", "2025-02-01 09:15:00"),
        ],
    )
    for statement in (
        "SELECT * FROM users WHERE id = 1",
        "SELECT substr(email, instr(email, '@') + 1) AS domain, count(*) AS users "
        "FROM users GROUP BY domain ORDER BY users DESC",
        "SELECT name, rank() OVER (ORDER BY created_at) AS signup_order FROM users",
        "EXPLAIN SELECT name FROM users WHERE id BETWEEN 2 AND 3",
    ):
        cursor = db.execute(statement)
        table = Table(
            *[d[0] for d in cursor.description or []], title=statement, title_justify="left"
        )
        for row in cursor.fetchall():
            table.add_row(*(Text("NULL" if v is None else str(v)) for v in row))
        console.print(table)
