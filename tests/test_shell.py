"""``alopex sql`` and ``alopex shell``, run as real processes: piped input, exact CSV and
JSON output, error lines, and the prompt_toolkit UI driven through a pseudo-terminal."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alopex.cli.shell import split_statements

ALOPEX = [sys.executable, "-m", "alopex"]
TIMING = r"[\d.]+ m?s"


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [*ALOPEX, *args], input=stdin, capture_output=True, text=True, env=env, timeout=60
    )


def make_foxes(db: str) -> None:
    created = run(
        "sql",
        db,
        "CREATE TABLE foxes (id INTEGER PRIMARY KEY, name TEXT, weight DECIMAL(5,1), "
        "wild BOOLEAN); INSERT INTO foxes VALUES (1, 'arctic', 3.5, true), "
        "(2, 'red, common', NULL, false), (3, NULL, 5.0, NULL)",
    )
    assert (created.returncode, created.stdout, created.stderr) == (0, "", "")


# -- alopex sql -------------------------------------------------------------------------


def test_sql_prints_json_of_the_last_statement_with_rows(tmp_path: Path) -> None:
    db = str(tmp_path / "db")
    make_foxes(db)
    result = run(
        "sql",
        db,
        "SELECT id FROM foxes; SELECT * FROM foxes ORDER BY id; UPDATE foxes "
        "SET id = id WHERE id = 0",
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        '[{"id": 1, "name": "arctic", "weight": "3.5", "wild": true},\n'
        '{"id": 2, "name": "red, common", "weight": null, "wild": false},\n'
        '{"id": 3, "name": null, "weight": "5.0", "wild": null}]\n'
    )
    assert json.loads(result.stdout)[1]["name"] == "red, common"


def test_sql_prints_csv_with_a_header(tmp_path: Path) -> None:
    db = str(tmp_path / "db")
    make_foxes(db)
    result = run("sql", db, "SELECT * FROM foxes ORDER BY id", "-f", "csv")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        'id,name,weight,wild\n1,arctic,3.5,true\n2,"red, common",,false\n3,,5.0,\n'
    )
    empty = run("sql", db, "SELECT id, name FROM foxes WHERE id > 10", "-f", "csv")
    assert empty.stdout == "id,name\n"


def test_sql_prints_a_table_by_default(tmp_path: Path) -> None:
    db = str(tmp_path / "db")
    make_foxes(db)
    result = run("sql", db, "SELECT id, name FROM foxes WHERE id = 2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.search(r"\bid\b.*\bname\b", lines[1])
    assert re.search(r"\b2\b.*red, common", lines[3])
    assert "NULL" in run("sql", db, "SELECT name FROM foxes WHERE id = 3").stdout


def test_sql_error_is_one_line_and_exit_status_1(tmp_path: Path) -> None:
    db = str(tmp_path / "db")
    make_foxes(db)
    result = run(
        "sql", db, "INSERT INTO foxes VALUES (4, 'fennec', 1.2, true); SELECT nope FROM foxes"
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ProgrammingError: no such column: nope")
    assert len(result.stderr.splitlines()) == 1
    # autocommit: the statement before the failing one stays committed
    assert run("sql", db, "SELECT count(*) AS n FROM foxes", "-f", "csv").stdout == "n\n4\n"
    syntax = run("sql", db, "SELEC 1")
    assert syntax.returncode == 1 and syntax.stderr.startswith("Error: ProgrammingError: ")


# -- alopex shell, piped ----------------------------------------------------------------

SCRIPT = """\
CREATE TABLE foxes (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL DEFAULT 'fox'
);
INSERT INTO foxes VALUES (1, 'arctic; white'),
                         (2, 'red');  -- a comment; with a semicolon
CREATE INDEX foxes_name ON foxes (name);
SELECT id, name FROM foxes ORDER BY id;
.tables
.schema foxes
SELECT nope FROM foxes;
.mode csv
SELECT name FROM foxes WHERE id = 2;
.timer off
.mode json
SELECT count(*) AS n FROM foxes
"""


def test_piped_shell_runs_statements_and_meta_commands(tmp_path: Path) -> None:
    db = str(tmp_path / "db")
    result = run("shell", db, stdin=SCRIPT)
    out = result.stdout
    assert result.stderr == "Error: ProgrammingError: no such column: nope\n"
    assert result.returncode == 1  # a pipe reports that something failed
    assert re.search(rf"^\(OK, {TIMING}\)$", out, re.M)  # CREATE TABLE
    assert re.search(rf"^\(2 rows changed, {TIMING}\)$", out, re.M)
    assert re.search(r"\b1\b.*arctic; white", out)
    assert re.search(rf"^\(2 rows, {TIMING}\)$", out, re.M)
    assert "\nfoxes\n" in out  # .tables
    assert (
        "CREATE TABLE foxes (\n"
        "    id INTEGER NOT NULL,\n"
        "    name TEXT NOT NULL DEFAULT 'fox',\n"
        "    PRIMARY KEY (id)\n"
        ");\n"
        "CREATE INDEX foxes_name ON foxes (name);\n"
    ) in out
    # after the error the shell went on: CSV, then JSON without timing, and the last
    # statement ran at the end of the input although it has no ';'
    assert re.search(rf"\nname\nred\n\(1 row, {TIMING}\)\n", out)
    assert out.endswith('\n[{"n": 2}]\n')
    assert "Error" not in out


def test_piped_shell_persists_and_lists_indexes(tmp_path: Path) -> None:
    db = str(tmp_path / "db")
    first = run(
        "shell", db, stdin="CREATE TABLE t (a INTEGER, b TEXT);\nINSERT INTO t VALUES (1, 'x');\n"
    )
    assert (first.returncode, first.stderr) == (0, "")
    second = run(
        "shell",
        db,
        stdin=".mode csv\nCREATE UNIQUE INDEX t_ab ON t (a, b);\n.indexes\n"
        ".timer off\nSELECT * FROM t;\n.bogus\n.quit\nSELECT 'never';\n",
    )
    assert second.stdout.splitlines()[1:] == [
        "name,table,columns,unique,method",
        't_ab,t,"a, b",true,btree',
        "a,b",
        "1,x",
    ]
    assert second.stderr == "Error: unknown command .bogus (try .help)\n"


def test_split_statements_ignores_semicolons_in_quotes_and_comments() -> None:
    assert split_statements("SELECT 1; SELECT 2") == (["SELECT 1;"], "SELECT 2")
    assert split_statements("SELECT ';', \"a;b\" -- x;\n;") == (
        ["SELECT ';', \"a;b\" -- x;\n;"],
        "",
    )
    assert split_statements("SELECT /* ; */ 1;\n-- only a comment") == (["SELECT /* ; */ 1;"], "")
    assert split_statements(";;  ;") == ([], "")
    assert split_statements("SELECT 'unterminated;") == ([], "SELECT 'unterminated;")


# -- alopex shell, interactive ----------------------------------------------------------

_ESCAPES = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]|\r")


class Terminal:
    """A child process on a pseudo-terminal, and what it has printed so far."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        import fcntl
        import pty
        import struct
        import termios

        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.process = subprocess.Popen(
            args, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        os.close(slave)
        self.raw = b""
        self.seen = 0  # how much of the screen text earlier expect() calls consumed

    def text(self) -> str:
        return _ESCAPES.sub(b"", self.raw).decode(errors="replace")

    def expect(self, pattern: str, timeout: float = 10.0) -> str:
        """Wait until ``pattern`` (a regex) appears after what was already matched."""
        deadline = time.monotonic() + timeout
        while True:
            match = re.compile(pattern).search(self.text(), self.seen)
            if match:
                self.seen = match.end()
                return match.group(0)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{pattern!r} not in {self.text()[self.seen :]!r}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    self.raw += os.read(self.master, 65536)
                except OSError:  # the child closed the terminal
                    time.sleep(0.01)

    def send(self, data: str) -> None:
        os.write(self.master, data.encode())

    def close(self) -> int:
        try:
            return self.process.wait(timeout=10)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            os.close(self.master)


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_interactive_shell_through_a_pseudo_terminal(tmp_path: Path) -> None:
    history = tmp_path / "history"
    env = {
        **os.environ,
        "TERM": "xterm",
        "PROMPT_TOOLKIT_NO_CPR": "1",  # no cursor-position queries to answer
        "ALOPEX_HISTORY": str(history),
    }
    term = Terminal([*ALOPEX, "shell", str(tmp_path / "db")], env)
    try:
        term.expect(r"alopex>")
        term.send("CREATE TABLE foxes (id INTEGER PRIMARY KEY, name TEXT);\r")
        term.expect(rf"\(OK, {TIMING}\)")
        term.expect(r"alopex>")
        # a statement over three lines runs only when a line ends it with ';'
        term.send("INSERT INTO foxes\r")
        term.expect(r"\.\.\.>")
        term.send("VALUES (1, 'arctic'),\r")
        term.expect(r"\.\.\.>")
        term.send("(2, 'fennec');\r")
        term.expect(rf"\(2 rows changed, {TIMING}\)")
        # Ctrl-C drops the input being typed
        term.expect(r"alopex>")
        term.send("SELECT this is dropped")
        term.expect("dropped")
        term.send("\x03")
        term.expect(r"alopex>")
        # Tab completes the table name created in this session
        term.send("SELECT name FROM foxe\t")
        term.expect("foxes")
        term.send("\rORDER BY id DESC;\r")
        term.expect(r"fennec.*\n.*arctic")
        term.expect(rf"\(2 rows, {TIMING}\)")
        term.expect(r"alopex>")
        term.send(".tables\r")
        term.expect(r"\nfoxes\n")
        term.send(".quit\r")
        assert term.close() == 0
    finally:
        if term.process.poll() is None:
            term.process.kill()
    saved = history.read_text()
    assert "+(2, 'fennec');" in saved and "+.tables" in saved
    assert "dropped" not in saved
