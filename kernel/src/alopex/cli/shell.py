"""``alopex shell`` (an interactive SQL shell) and ``alopex sql`` (one-shot SQL).

Both run with autocommit on, as sqlite3's shell does: each statement commits on its own
unless ``BEGIN`` opened a transaction. prompt_toolkit is imported only when a terminal
session starts, so other ``alopex`` commands do not pay for it; piped input is read
line by line without it (``echo "SELECT 1;" | alopex shell``).
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import math
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

import alopex
from alopex.errors import AlopexError, ProgrammingError

if TYPE_CHECKING:
    from alopex.connection import Connection
    from alopex.cursor import Cursor
    from alopex.sql.catalog import Catalog

MODES = ("table", "csv", "json")
META_HELP = (
    (".tables", "list tables and views"),
    (".schema [TABLE]", "show CREATE statements (of every table, or of TABLE)"),
    (".indexes [TABLE]", "list indexes (of every table, or of TABLE)"),
    (".timer on|off", "show how long each statement took"),
    (".mode table|csv|json", "how results are printed"),
    (".help", "this list"),
    (".quit, .exit", "leave the shell (so does Ctrl-D)"),
)
META_COMMANDS = (".tables", ".schema", ".indexes", ".timer", ".mode", ".help", ".quit", ".exit")
_KEYWORD_TEXT = """
    SELECT FROM WHERE GROUP BY HAVING ORDER LIMIT OFFSET DISTINCT AS AND OR NOT NULL IS IN
    BETWEEN LIKE GLOB ESCAPE EXISTS CASE WHEN THEN ELSE END JOIN INNER LEFT RIGHT FULL OUTER
    CROSS ON USING UNION ALL INTERSECT EXCEPT WITH RECURSIVE ASC DESC NULLS FIRST LAST
    INSERT INTO VALUES DEFAULT UPDATE SET DELETE RETURNING REPLACE CONFLICT DO NOTHING
    CREATE TABLE VIEW INDEX UNIQUE PRIMARY KEY FOREIGN REFERENCES CHECK CONSTRAINT
    IF DROP ALTER ADD COLUMN RENAME TO BEGIN COMMIT ROLLBACK TRANSACTION SAVEPOINT RELEASE
    EXPLAIN ANALYZE REINDEX TRUE FALSE CAST
    INTEGER BIGINT REAL DOUBLE DECIMAL TEXT VARCHAR BLOB BOOLEAN TIMESTAMP DATE VECTOR
    COUNT SUM AVG MIN MAX COALESCE NULLIF ABS ROUND LENGTH LOWER UPPER SUBSTR TRIM
"""
KEYWORDS = tuple(_KEYWORD_TEXT.split())
_DDL_WORDS = frozenset({"create", "drop", "alter", "rollback", "commit", "end", "begin"})
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WORD_BEFORE_CURSOR = re.compile(r"[A-Za-z0-9_.]*$")

out_console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


# -- the catalog ------------------------------------------------------------------------


def read_catalog(con: Connection) -> Catalog:
    """The catalog as the connection sees it now.

    There is no information_schema yet, so this reads the session's internal catalog;
    it is the one place to change when there is. A transaction opened only for this
    read is rolled back, so the next statement takes a fresh snapshot.
    """
    session = con._sql()
    opened = not session.in_transaction
    try:
        return session._load_catalog(session._transaction())
    finally:
        if opened:
            session.rollback()


def _quote(name: str) -> str:
    return name if _IDENTIFIER.fullmatch(name) else '"' + name.replace('"', '""') + '"'


def schema_text(catalog: Catalog, name: str | None = None) -> str:
    """CREATE statements for every table, its indexes and every view (or only ``name``)."""
    tables = sorted(catalog.tables.values(), key=lambda t: t.name.lower())
    views = sorted(catalog.views.values(), key=lambda v: v.name.lower())
    if name is not None:
        view = catalog.views.get(name.lower())
        tables, views = ([], [view]) if view is not None else ([catalog.table(name)], [])
    parts: list[str] = []
    for table in tables:
        names = [_quote(c.name) for c in table.columns]
        lines = []
        for column, quoted in zip(table.columns, names, strict=True):
            line = f"{quoted} {column.type}"
            if column.not_null:
                line += " NOT NULL"
            if column.default is not None:
                line += f" DEFAULT {column.default}"
            lines.append(line)
        if table.primary_key:
            lines.append(f"PRIMARY KEY ({', '.join(names[p] for p in table.primary_key)})")
        for unique in getattr(table, "uniques", ()):
            lines.append(f"UNIQUE ({', '.join(names[p] for p in unique)})")
        lines.extend(f"CHECK ({check})" for check in getattr(table, "checks", ()))
        body = ",\n".join(f"    {line}" for line in lines)
        parts.append(f"CREATE TABLE {_quote(table.name)} (\n{body}\n);")
        for index in sorted(catalog.indexes_of(table.name), key=lambda i: i.name.lower()):
            unique_word = "UNIQUE " if index.unique else ""
            method = getattr(index, "method", "btree")
            using = f" USING {method.upper()}" if method != "btree" else ""
            columns = ", ".join(names[p] for p in index.columns)
            parts.append(
                f"CREATE {unique_word}INDEX {_quote(index.name)} ON {_quote(table.name)}"
                f"{using} ({columns});"
            )
    parts.extend(f"CREATE VIEW {_quote(view.name)} AS {view.sql};" for view in views)
    return "\n".join(parts)


def index_rows(catalog: Catalog, table: str | None = None) -> list[tuple[Any, ...]]:
    """One row per index: name, table, columns, unique, method."""
    if table is not None:
        catalog.table(table)  # an unknown table is an error, with a suggestion
    rows = []
    for index in sorted(catalog.indexes.values(), key=lambda i: (i.table.lower(), i.name)):
        if table is not None and index.table.lower() != table.lower():
            continue
        owner = catalog.tables.get(index.table.lower())
        columns = [owner.columns[p].name if owner else str(p) for p in index.columns]
        rows.append(
            (
                index.name,
                index.table,
                ", ".join(columns),
                index.unique,
                getattr(index, "method", "btree"),
            )
        )
    return rows


# -- statements -------------------------------------------------------------------------


def split_statements(text: str) -> tuple[list[str], str]:
    """The complete statements in ``text`` (each ending at a ``;`` outside quotes and
    comments) and the unfinished rest ("" when only whitespace or comments remain).

    The shell runs input when it ends a statement, so this must not be fooled by a ``;``
    inside a string, a quoted name or a comment.
    """
    statements: list[str] = []
    start = 0
    content = False  # the current statement has something besides blanks and comments
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in "'\"`[":
            close = "]" if char == "[" else char
            end = text.find(close, i + 1)
            i = n if end < 0 else end + 1
            content = True
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif char == ";":
            if content:
                statements.append(text[start : i + 1].strip())
            start, content = i + 1, False
            i += 1
        else:
            content = content or not char.isspace()
            i += 1
    return statements, text[start:].strip() if content else ""


def first_word(statement: str) -> str:
    """The statement's leading keyword, lower-cased (comments skipped)."""
    stripped = re.sub(r"^(\s+|--[^\n]*(\n|$)|/\*.*?\*/)*", "", statement, flags=re.S)
    match = _IDENTIFIER.match(stripped)
    return match.group(0).lower() if match else ""


# -- rendering --------------------------------------------------------------------------


def cell_text(value: Any, null: str = "NULL") -> str:
    """One value as text, the same in tables and CSV: booleans as true/false, bytes as
    ``\\x`` hex (as PostgreSQL prints them), vectors as ``[1.0, 2.0]``."""
    if value is None:
        return null
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(value).hex()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(cell_text(v) for v in value) + "]"
    return str(value)


def json_value(value: Any) -> Any:
    """A value JSON can hold: numbers, strings, booleans and null stay themselves;
    decimals become strings (exact), dates ISO 8601, bytes ``\\x`` hex, NaN a string."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, (dt.date, dt.time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return cell_text(value)


def format_json(names: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A JSON list of objects, one row per line."""
    lines = [
        json.dumps(
            {name: json_value(v) for name, v in zip(names, row, strict=True)},
            ensure_ascii=False,
        )
        for row in rows
    ]
    return "[" + ",\n".join(lines) + "]"


def format_csv(names: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """CSV with a header row; NULL is an empty field."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(names)
    writer.writerows([cell_text(v, null="") for v in row] for row in rows)
    return buffer.getvalue().rstrip("\n")


def rich_table(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    """A rich table; numeric columns are right-aligned, NULL is dimmed."""
    table = Table(show_edge=True, header_style="bold")
    for position, name in enumerate(names):
        values = [row[position] for row in rows if row[position] is not None]
        numeric = bool(values) and all(
            isinstance(v, (int, float, decimal.Decimal)) and not isinstance(v, bool) for v in values
        )
        table.add_column(Text(name), justify="right" if numeric else "left")
    for row in rows:
        table.add_row(
            *(Text("NULL", style="dim") if v is None else Text(cell_text(v)) for v in row)
        )
    return table


def print_rows(
    console: Console, names: Sequence[str], rows: Sequence[Sequence[Any]], mode: str
) -> None:
    """Print a result in ``mode`` (table, csv or json)."""
    if mode == "json":
        console.out(format_json(names, rows), highlight=False)
    elif mode == "csv":
        console.out(format_csv(names, rows), highlight=False)
    else:
        table = rich_table(names, rows)
        width = None
        if not console.is_terminal:  # a pipe has no width: never cut values off
            needed = Measurement.get(console, console.options, table).maximum
            width = max(console.width, needed)
        console.print(table, width=width)


def error_line(err: BaseException) -> Text:
    """``Error: <Type>: <message>`` as one red line."""
    message = " ".join(str(err).splitlines())
    if isinstance(err, AlopexError):
        message = f"{type(err).__name__}: {message}"
    return Text(f"Error: {message}", style="red")


def _elapsed(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class ShellError(Exception):
    """A meta command was misused; shown as an error line, the shell goes on."""


_VECTOR_INDEX = re.compile(r"\s*CREATE\s+INDEX\b[^;]*\bUSING\s+(HNSW|IVF)\b", re.I)


def build_vector_indexes(con: Connection, console: Console) -> None:
    """Build new vector indexes right away with a progress bar (instead of silently on the
    first query), on every core the provider uses."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    columns = (
        "building {task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        tasks: dict[str, Any] = {}

        def report(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done)

        con._sql().prepare_vector_indexes(report)


# -- the shell --------------------------------------------------------------------------


class Shell:
    """Runs SQL and meta commands against one connection and prints what they return.

    Shared by the terminal UI and piped input, so both behave the same.
    """

    def __init__(self, con: Connection, out: Console, err: Console) -> None:
        self.con = con
        self.out = out
        self.err = err
        self.mode = "table"
        self.timer = True
        self.failed = False  # some statement or command failed (exit status of a pipe)
        self.names: list[str] = []  # completion words: tables, views, columns
        con.autocommit = True
        self.refresh_names()

    # -- running -------------------------------------------------------------------------

    def run_sql(self, text: str) -> None:
        """Run every statement in ``text``, reporting errors and going on after them."""
        statements, rest = split_statements(text)
        if rest:
            statements.append(rest)
        changed_catalog = False
        for statement in statements:
            changed_catalog |= first_word(statement) in _DDL_WORDS
            self.run_statement(statement)
        if changed_catalog:
            self.refresh_names()

    def run_statement(self, statement: str) -> None:
        """Run one statement and print its rows or row count; an error is one line and
        Ctrl-C abandons the statement, so the shell survives both."""
        started = time.perf_counter()
        try:
            cursor = self.con.execute(statement)
            names, rows = _result(cursor)
        except AlopexError as err:
            self.report(err)
            return
        except KeyboardInterrupt:
            self.report(KeyboardInterrupt("interrupted"))
            return
        if _VECTOR_INDEX.match(statement):
            build_vector_indexes(self.con, self.err)
        elapsed = _elapsed(time.perf_counter() - started)
        if names is not None:
            print_rows(self.out, names, rows, self.mode)
            counted = _plural(len(rows), "row")
        elif cursor.rowcount >= 0:
            counted = _plural(cursor.rowcount, "row") + " changed"
        else:
            counted = "OK"
        if self.timer:
            self.status(f"({counted}, {elapsed})")
        elif self.mode == "table" and counted != "OK":
            self.status(f"({counted})")

    def status(self, text: str) -> None:
        self.out.print(Text(text, style="dim"), soft_wrap=True)

    def report(self, err: BaseException) -> None:
        self.failed = True
        self.err.print(error_line(err), soft_wrap=True)

    # -- meta commands -------------------------------------------------------------------

    def meta(self, line: str) -> bool:
        """Run one meta command; False means leave the shell."""
        command, *args = line.split()
        try:
            return self._meta(command.lower(), args)
        except (AlopexError, ShellError) as err:
            self.report(err)
            return True

    def _meta(self, command: str, args: list[str]) -> bool:
        if command in (".quit", ".exit"):
            return False
        if command == ".help":
            table = Table(show_header=False, box=None)
            table.add_column(style="bold")
            table.add_column()
            for usage, text in META_HELP:
                table.add_row(usage, text)
            self.out.print(table)
            self.out.print("SQL statements end with ';' and may span lines.", highlight=False)
        elif command == ".tables":
            catalog = read_catalog(self.con)
            names = [t.name for t in catalog.tables.values()]
            names += [v.name for v in catalog.views.values()]
            for name in sorted(names, key=str.lower):
                self.out.print(Text(name), soft_wrap=True)
        elif command == ".schema":
            text = schema_text(read_catalog(self.con), _one_optional(command, args))
            if text:
                self.out.print(Text(text), soft_wrap=True)
        elif command == ".indexes":
            rows = index_rows(read_catalog(self.con), _one_optional(command, args))
            print_rows(self.out, ["name", "table", "columns", "unique", "method"], rows, self.mode)
        elif command == ".timer":
            if args not in (["on"], ["off"]):
                raise ShellError("usage: .timer on|off")
            self.timer = args == ["on"]
        elif command == ".mode":
            if len(args) != 1 or args[0] not in MODES:
                raise ShellError(f"usage: .mode {'|'.join(MODES)}")
            self.mode = args[0]
        else:
            raise ShellError(f"unknown command {command} (try .help)")
        return True

    # -- completion ----------------------------------------------------------------------

    def refresh_names(self) -> None:
        """Re-read table, view and column names for completion (after DDL)."""
        try:
            catalog = read_catalog(self.con)
        except AlopexError:
            return
        names = set()
        for table in catalog.tables.values():
            names.add(table.name)
            for column in table.columns:
                names.add(column.name)
                names.add(f"{table.name}.{column.name}")
        names.update(view.name for view in catalog.views.values())
        self.names = sorted(names)

    def completions(self, before_cursor: str) -> list[str]:
        """Words completing the one before the cursor; keywords follow the typed case."""
        word = _WORD_BEFORE_CURSOR.search(before_cursor)
        prefix = word.group(0) if word else ""
        if before_cursor.lstrip().startswith(".") and before_cursor.lstrip() == prefix:
            return [c for c in META_COMMANDS if c.startswith(prefix.lower())]
        if not prefix:
            return []
        lowered = prefix.lower()
        qualified = "." in prefix  # table.column only once a dot is typed
        found = [n for n in self.names if n.lower().startswith(lowered) and ("." in n) == qualified]
        keywords = [k for k in KEYWORDS if k.lower().startswith(lowered)]
        if prefix.islower():
            keywords = [k.lower() for k in keywords]
        return found + [k for k in keywords if k not in found]

    # -- input ---------------------------------------------------------------------------

    def is_complete(self, text: str) -> bool:
        """Whether Enter should run ``text``: a meta command, or SQL ending with ``;``."""
        stripped = text.strip()
        if not stripped or stripped.startswith("."):
            return True
        statements, rest = split_statements(text)
        return bool(statements) and not rest

    def run_input(self, text: str) -> bool:
        """Run what the user entered; False means leave the shell."""
        stripped = text.strip()
        if stripped.startswith("."):
            return self.meta(stripped)
        if stripped:
            self.run_sql(text)
        return True

    def run_lines(self, lines: Iterable[str]) -> None:
        """Piped input: meta commands on their own line run at once, SQL when a ``;``
        ends it; a last statement without ``;`` runs at the end of the input."""
        pending = ""
        for line in lines:
            if not pending.strip() and line.strip().startswith("."):
                if not self.meta(line.strip()):
                    return
                continue
            pending += line if line.endswith("\n") else line + "\n"
            statements, rest = split_statements(pending)
            if statements:
                self.run_sql("\n".join(statements))
            pending = rest
        if pending.strip():
            self.run_sql(pending)

    def prompt(self) -> str:
        return "alopex*> " if self.con.in_transaction else "alopex> "


def _one_optional(command: str, args: list[str]) -> str | None:
    if len(args) > 1:
        raise ShellError(f"usage: {command} [TABLE]")
    return args[0] if args else None


def _result(cursor: Cursor) -> tuple[list[str] | None, list[tuple[Any, ...]]]:
    """Column names (None when the statement returns no rows) and the rows."""
    description = cursor.description
    if description is None:
        return None, []
    return [d[0] for d in description], cursor.fetchall()


def history_path() -> Path:
    """Where history persists between sessions; ALOPEX_HISTORY moves it (tests, CI)."""
    return Path(os.environ.get("ALOPEX_HISTORY") or Path.home() / ".alopex_history")


def run_interactive(shell: Shell) -> None:
    """The terminal UI: multi-line editing, history, completion; Ctrl-C drops the input,
    Ctrl-D or .quit leaves."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import CompleteEvent, Completer, Completion
    from prompt_toolkit.document import Document
    from prompt_toolkit.history import FileHistory, History, InMemoryHistory
    from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent

    class SqlCompleter(Completer):
        def get_completions(
            self, document: Document, complete_event: CompleteEvent
        ) -> Iterator[Completion]:
            before = document.text_before_cursor
            word = _WORD_BEFORE_CURSOR.search(before)
            length = len(word.group(0)) if word else 0
            for text in shell.completions(before):
                yield Completion(text, start_position=-length)

    bindings = KeyBindings()

    @bindings.add("enter")
    def _enter(event: KeyPressEvent) -> None:
        buffer = event.current_buffer
        state = buffer.complete_state
        if state is not None and state.current_completion is not None:
            buffer.apply_completion(state.current_completion)
        elif shell.is_complete(buffer.text):
            buffer.validate_and_handle()
        else:
            buffer.insert_text("\n")

    history: History
    try:
        path = history_path()
        path.touch(exist_ok=True)
        history = FileHistory(str(path))
    except OSError:
        history = InMemoryHistory()
    session: PromptSession[str] = PromptSession(
        history=history,
        completer=SqlCompleter(),
        complete_while_typing=False,
        multiline=True,
        key_bindings=bindings,
        prompt_continuation=lambda width, line, wrapped: "...> ".rjust(width),
    )
    shell.out.print(
        f"Alopex {alopex.__version__} SQL shell. Statements end with ';'. "
        "Type .help for commands, Ctrl-D to leave.",
        highlight=False,
    )
    while True:
        try:
            text = session.prompt(shell.prompt())
        except KeyboardInterrupt:
            continue
        except EOFError:
            break
        try:
            if not shell.run_input(text):
                break
        except KeyboardInterrupt:  # while printing a long result
            shell.report(KeyboardInterrupt("interrupted"))


# -- commands ---------------------------------------------------------------------------

config_option = click.option(
    "--config",
    "-c",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML config file laid over modes/embedded.toml.",
)


def _connect(path: str, config: str | None) -> Connection:
    try:
        return alopex.connect(path, config=config)
    except AlopexError as err:
        err_console.print(error_line(err), soft_wrap=True)
        sys.exit(1)


@click.command("shell")
@click.argument("path", type=click.Path(), default=":memory:")
@config_option
def shell(path: str, config: str | None) -> None:
    """An interactive SQL shell on the database at PATH (default: in memory).

    Statements end with ';' and run with autocommit (BEGIN opens a transaction).
    Piped input runs without the terminal UI: echo "SELECT 1;" | alopex shell
    """
    con = _connect(path, config)
    runner = Shell(con, out_console, err_console)
    try:
        if sys.stdin.isatty():
            run_interactive(runner)
        else:
            runner.run_lines(sys.stdin)
        if con.in_transaction:
            err_console.print("the open transaction was rolled back", style="yellow")
    finally:
        con.close()
    if runner.failed and not sys.stdin.isatty():
        sys.exit(1)


@click.command("sql")
@click.argument("path", type=click.Path())
@click.argument("statements")
@click.option(
    "--format",
    "-f",
    "fmt",
    type=click.Choice(MODES),
    default="table",
    show_default=True,
    help="How to print the rows.",
)
@config_option
def sql(path: str, statements: str, fmt: str, config: str | None) -> None:
    """Run STATEMENTS (separated by ';', autocommit) on the database at PATH and print
    the rows of the last one that returned rows."""
    con = _connect(path, config)
    try:
        con.autocommit = True
        last = _run_all(con, statements)
    except AlopexError as err:
        err_console.print(error_line(err), soft_wrap=True)
        sys.exit(1)
    finally:
        con.close()
    if last is not None:
        print_rows(out_console, *last, fmt)


def _run_all(con: Connection, text: str) -> tuple[list[str], list[tuple[Any, ...]]] | None:
    """Run each statement; the names and rows of the last that returned rows."""
    statements, rest = split_statements(text)
    if rest:
        statements.append(rest)
    if not statements:
        raise ProgrammingError("no SQL statement given")
    last = None
    for statement in statements:
        names, rows = _result(con.execute(statement))
        if _VECTOR_INDEX.match(statement):
            build_vector_indexes(con, err_console)
        if names is not None:
            last = names, rows
    return last


__all__ = [
    "Shell",
    "format_csv",
    "format_json",
    "read_catalog",
    "schema_text",
    "shell",
    "split_statements",
    "sql",
]
