"""A runner for SQLite's sqllogictest scripts against any PEP 249 connection.

The format is the one of SQLite's ``sqllogictest.c`` (https://sqlite.org/sqllogictest):

* records are separated by blank lines (lines of only whitespace count as blank); lines
  starting with ``#`` are comments wherever they appear, even inside a record;
* ``skipif <engine>`` / ``onlyif <engine>`` lines may precede any record;
* ``statement ok`` / ``statement error`` followed by the SQL;
* ``query <types> [nosort|rowsort|valuesort] [label]`` followed by the SQL, then ``----``
  and the expected values one per line, or the single line ``N values hashing to <md5>``;
* ``hash-threshold N`` and ``halt``.

Results are compared in the form the expected block has (values, or count and MD5 of the
values each followed by a newline), whatever the threshold: select1.test and select2.test
hash without a ``hash-threshold`` record (they were written with the C runner's ``-ht 8``).

Values are compared as the reference runner prints them (see :func:`format_value`), so a
result only passes if it prints exactly like SQLite's does. Run it as
``python -m alopex.testing.sqllogictest --engine sqlite PATHS...``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import math
import re
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from itertools import chain
from pathlib import Path
from typing import Any, Literal, TypeAlias

__all__ = [
    "Condition",
    "Control",
    "Failure",
    "FileResult",
    "ParseError",
    "Query",
    "Record",
    "Statement",
    "alopex_connect",
    "applies",
    "collect_test_files",
    "format_report",
    "format_value",
    "main",
    "parse_file",
    "parse_text",
    "result_hash",
    "run_file",
    "run_paths",
    "split_statements",
    "sqlite_connect",
]

SortMode: TypeAlias = Literal["nosort", "rowsort", "valuesort"]
SORT_MODES: tuple[SortMode, ...] = ("nosort", "rowsort", "valuesort")
TYPE_LETTERS = frozenset("ITR")
MAX_DETAILED_FAILURES = 20
# Shown values per failure: enough to see the difference, short enough for a CI log.
_PREVIEW_VALUES = 40

_HASH_LINE = re.compile(r"(\d+) values hashing to ([0-9a-f]{32})")
_INT64_MAX = 2**63 - 1
_ONE = Decimal(1)
_MASK = bytes(c if 32 <= c <= 126 else 64 for c in range(256))  # 64 is "@"
_INT64_MIN = -(2**63)
# sqlite3Atoi64 / sqlite3AtoF read the longest numeric prefix after leading whitespace.
_INT_PREFIX = re.compile(r"[ \t\n\v\f\r]*([+-]?)(\d*)")
_REAL_PREFIX = re.compile(r"[ \t\n\v\f\r]*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)")


class ParseError(ValueError):
    """A script that the reference runner would also reject (it stops at such a record)."""

    def __init__(self, source: str, line: int, message: str) -> None:
        super().__init__(f"{source}:{line}: {message}")
        self.source = source
        self.line = line


@dataclass(frozen=True, slots=True)
class Condition:
    """``skipif X`` or ``onlyif X``; engines match case-insensitively, as in the C runner."""

    kind: Literal["skipif", "onlyif"]
    engine: str

    def allows(self, engine: str) -> bool:
        matches = self.engine.lower() == engine.lower()
        return not matches if self.kind == "skipif" else matches


@dataclass(frozen=True, slots=True)
class Statement:
    """SQL that must succeed (``statement ok``) or raise (``statement error``)."""

    sql: str
    expect_error: bool
    line: int
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True)
class Query:
    """SQL whose formatted, optionally sorted values must match the expected block.

    Exactly one of ``expected_values`` and ``expected_hash`` is set, or neither when the
    record has no ``----`` line (then it only has to run, as in the C runner).
    """

    sql: str
    types: str
    sort_mode: SortMode
    label: str | None
    expected_values: tuple[str, ...] | None
    expected_hash: str | None
    expected_count: int | None
    line: int
    conditions: tuple[Condition, ...] = ()

    @property
    def expected_text(self) -> str:
        """The expected block as a failure report shows it."""
        if self.expected_hash is not None:
            return f"{self.expected_count} values hashing to {self.expected_hash}"
        if self.expected_values is None:
            return "(no expected results)"
        return _preview(self.expected_values)


@dataclass(frozen=True, slots=True)
class Control:
    """``halt`` (stop the file) or ``hash-threshold N`` (``value``; 0 means never hash)."""

    kind: Literal["halt", "hash-threshold"]
    value: int | None
    line: int
    conditions: tuple[Condition, ...] = ()


Record: TypeAlias = Statement | Query | Control


def applies(record: Record, engine: str) -> bool:
    """Whether ``record`` runs for ``engine``: every condition must allow it."""
    return all(c.allows(engine) for c in record.conditions)


# --- parsing ---------------------------------------------------------------------------


def parse_file(path: str | Path) -> list[Record]:
    """Parse one script; undecodable bytes survive as surrogates so line numbers hold."""
    text = Path(path).read_bytes().decode("utf-8", errors="surrogateescape")
    return parse_text(text, source=str(path))


def parse_text(text: str, *, source: str = "<text>") -> list[Record]:
    """Parse script text; a record that the C runner would reject raises ParseError."""
    # The C runner strips one trailing CR per line; many corpus files have CRLF endings.
    lines = text.replace("\r\n", "\n").split("\n")
    records: list[Record] = []
    body: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start=1):
        if not line or line.isspace():
            if body:
                records.append(_parse_record(body, source))
                body = []
        elif line[0] != "#":
            body.append((number, line))
    if body:
        records.append(_parse_record(body, source))
    return records


def _parse_record(body: list[tuple[int, str]], source: str) -> Record:
    conditions: list[Condition] = []
    index = 0
    while True:
        number, line = body[index]
        tokens = line.split()
        head = tokens[0]
        if head not in ("skipif", "onlyif"):
            break
        if len(tokens) < 2:
            raise ParseError(source, number, f"{head} needs an engine name")
        conditions.append(Condition("skipif" if head == "skipif" else "onlyif", tokens[1]))
        index += 1
        if index == len(body):
            raise ParseError(source, number, f"{head} is not followed by a record")
    rest = [text for _, text in body[index + 1 :]]
    conds = tuple(conditions)
    if head == "statement":
        mode = tokens[1] if len(tokens) > 1 else ""
        if mode not in ("ok", "error"):
            raise ParseError(source, number, f"statement argument must be ok or error: {mode!r}")
        return Statement("\n".join(rest), mode == "error", number, conds)
    if head == "query":
        return _parse_query(tokens, rest, number, conds, source)
    if head == "halt":
        return Control("halt", None, number, conds)
    if head == "hash-threshold":
        if len(tokens) < 2 or not tokens[1].isdigit():
            raise ParseError(source, number, "hash-threshold needs a non-negative integer")
        return Control("hash-threshold", int(tokens[1]), number, conds)
    raise ParseError(source, number, f"unknown record type {head!r}")


def _parse_query(
    tokens: list[str], rest: list[str], number: int, conds: tuple[Condition, ...], source: str
) -> Query:
    types = tokens[1] if len(tokens) > 1 else ""
    if not types or not TYPE_LETTERS.issuperset(types):
        raise ParseError(source, number, f"query types must be letters I, T, R: {types!r}")
    sort = tokens[2] if len(tokens) > 2 else "nosort"
    if sort not in SORT_MODES:
        raise ParseError(source, number, f"unknown sort mode {sort!r}")
    sort_mode = SORT_MODES[SORT_MODES.index(sort)]  # the Literal-typed equal of sort
    label = tokens[3] if len(tokens) > 3 else None
    try:
        split = rest.index("----")
    except ValueError:
        return Query("\n".join(rest), types, sort_mode, label, None, None, None, number, conds)
    sql = "\n".join(rest[:split])
    expected = rest[split + 1 :]
    if len(expected) == 1 and (m := _HASH_LINE.fullmatch(expected[0])):
        count, digest = int(m[1]), m[2]
        return Query(sql, types, sort_mode, label, None, digest, count, number, conds)
    return Query(sql, types, sort_mode, label, tuple(expected), None, None, number, conds)


# --- value formatting ------------------------------------------------------------------


def _atoi64(text: str) -> int:
    """sqlite3_column_int64 of text: the leading integer, 0 if none, clamped to 64 bits."""
    m = _INT_PREFIX.match(text)
    assert m is not None  # the pattern matches the empty string
    if not m[2]:
        return 0
    value = -int(m[2]) if m[1] == "-" else int(m[2])
    return min(max(value, _INT64_MIN), _INT64_MAX)


def _atof(text: str) -> float:
    """sqlite3_column_double of text: the leading real number, 0.0 if none."""
    m = _REAL_PREFIX.match(text)
    return float(m[1]) if m else 0.0


def _float_to_int64(value: float) -> int:
    """sqlite's doubleToInt64: truncate toward zero, saturating at the int64 bounds."""
    if value <= _INT64_MIN:
        return _INT64_MIN
    if value >= _INT64_MAX:
        return _INT64_MAX
    return int(value)


def _real_text(value: float) -> str:
    """SQLite's text of a REAL (``%!.15g``): always a decimal point, e.g. 1.0, 1.0e+20."""
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    text = f"{value:.15g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        if "." not in mantissa:
            return f"{mantissa}.0e{exponent}"
        return text
    return text if "." in text else text + ".0"


def _three_decimals(value: float) -> str:
    """SQLite's ``%.3f``, which differs from C's: it rounds half up the shortest decimal
    that reads back as the double (2.0005 -> 2.001, 1.0005 -> 1.001), keeps at most 16
    significant digits (-2**63 -> -9223372036854776000.000), prints -0.0 as 0.000 and
    infinities as Inf. The corpus' expected values follow these rules."""
    if value == 0.0:
        return "0.000"
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    exact = Decimal(repr(value))
    places = min(3, 15 - exact.adjusted())  # 16 significant digits at most
    rounded = exact.quantize(_ONE.scaleb(-places), rounding=ROUND_HALF_UP)
    return f"{rounded:.3f}"


def _masked(data: bytes) -> str:
    """Mask like the C runner: the text ends at a NUL (a C string) and every byte outside
    ' '..'~' prints as '@', so a non-ASCII character prints one '@' per UTF-8 byte."""
    data = data.split(b"\x00", 1)[0]
    return data.translate(_MASK).decode("ascii") if data else "(empty)"


def _utf8(text: str) -> bytes:
    try:  # undecodable script bytes came in as surrogateescape: give the bytes back
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _fmt_text(value: Any) -> str:
    if type(value) is str:
        if not value:
            return "(empty)"
        return value if value.isascii() and value.isprintable() else _masked(_utf8(value))
    if value is None:
        return "NULL"
    if isinstance(value, bytes | bytearray | memoryview):  # a blob's text is its bytes
        return _masked(bytes(value))
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "NULL" if math.isnan(value) else _real_text(value)
    return _fmt_text(str(value))


def _fmt_int(value: Any) -> str:
    if type(value) is int:
        return str(value)
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return "NULL" if math.isnan(value) else str(_float_to_int64(value))
    if isinstance(value, int):  # bool and int subclasses
        return str(int(value))
    if isinstance(value, str):
        return str(_atoi64(value))
    if isinstance(value, bytes | bytearray | memoryview):
        return str(_atoi64(bytes(value).decode("latin-1")))
    try:  # Decimal, numpy scalars and other numbers
        return str(_float_to_int64(float(value)))
    except (TypeError, ValueError, OverflowError):
        return str(_atoi64(str(value)))


def _fmt_real(value: Any) -> str:
    if type(value) is float:
        return "NULL" if math.isnan(value) else _three_decimals(value)
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return _three_decimals(_atof(value))
    if isinstance(value, bytes | bytearray | memoryview):
        return _three_decimals(_atof(bytes(value).decode("latin-1")))
    try:
        number = float(value)
    except OverflowError:
        number = math.inf if value > 0 else -math.inf
    except (TypeError, ValueError):
        number = _atof(str(value))
    return "NULL" if math.isnan(number) else _three_decimals(number)


_FORMATTERS: dict[str, Callable[[Any], str]] = {"I": _fmt_int, "T": _fmt_text, "R": _fmt_real}


def format_value(value: Any, type_letter: str) -> str:
    """Print one value as the C runner's SQLite driver does for the column's type letter.

    * NULL (None, or NaN which SQLite turns into NULL) prints ``NULL`` in every column.
    * ``I``: integers as is; reals truncate toward zero (clamped to int64); text takes its
      leading integer (``'12abc'`` -> 12, ``'abc'`` -> 0).
    * ``R``: ``%.3f`` of the number; text takes its leading real number (or 0.000).
    * ``T``: the value's SQLite text (reals as ``%!.15g``: ``1.0``, ``0.333333333333333``);
      the empty string prints ``(empty)``; bytes outside ``' '..'~'`` print ``@``.
    """
    return _FORMATTERS[type_letter](value)


def result_hash(values: Sequence[str]) -> str:
    """MD5 of every value followed by a newline, as the C runner hashes results."""
    data = ("\n".join(values) + "\n").encode("utf-8", "surrogateescape") if values else b""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _format_rows(rows: Sequence[Sequence[Any]], types: str, sort_mode: SortMode) -> list[str]:
    """Formatted values in result order, after the record's sorting (C runner's strcmp)."""
    if len(types) == 1:
        fmt = _FORMATTERS[types]
        values = [fmt(row[0]) for row in rows]
        if sort_mode != "nosort":
            values.sort()
        return values
    fmts = [_FORMATTERS[t] for t in types]
    if sort_mode == "rowsort":
        table = [[f(v) for f, v in zip(fmts, row, strict=True)] for row in rows]
        table.sort()
        return list(chain.from_iterable(table))
    values = [f(v) for row in rows for f, v in zip(fmts, row, strict=True)]
    if sort_mode == "valuesort":
        values.sort()
    return values


def split_statements(sql: str) -> list[str]:
    """The statements of a ``statement`` record, which may hold several (the C runner hands
    it to sqlite3_exec, which runs them all in order). Splits where SQLite's lexer says a
    statement is complete, so ';' in strings, comments and trigger bodies stays inside."""
    if ";" not in sql:
        return [sql]
    parts: list[str] = []
    start = 0
    end = sql.find(";")
    while end != -1:
        chunk = sql[start : end + 1]
        if sqlite3.complete_statement(chunk):
            if chunk.strip(" \t\r\n;"):
                parts.append(chunk.strip())
            start = end + 1
        end = sql.find(";", end + 1)
    if sql[start:].strip():
        parts.append(sql[start:].strip())
    return parts if len(parts) > 1 else [sql]


def _preview(values: Sequence[str]) -> str:
    if not values:
        return "(no values)"
    shown = "\n".join(values[:_PREVIEW_VALUES])
    if len(values) > _PREVIEW_VALUES:
        shown += f"\n... ({len(values)} values)"
    return shown


# --- running ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed record: where, what was expected and what the engine did."""

    line: int
    sql: str
    message: str
    expected: str
    got: str

    def describe(self, path: str = "") -> str:
        where = f"{path}:{self.line}" if path else f"line {self.line}"
        return (
            f"{where}: {self.message}\n"
            f"  sql:      {_indent(self.sql)}\n"
            f"  expected: {_indent(self.expected)}\n"
            f"  got:      {_indent(self.got)}"
        )


def _indent(text: str) -> str:
    return text.replace("\n", "\n            ")


@dataclass(slots=True)
class FileResult:
    """Counts for one script; ``failures`` keeps the first MAX_DETAILED_FAILURES details."""

    path: str
    statements_run: int = 0
    statements_passed: int = 0
    queries_run: int = 0
    queries_passed: int = 0
    skipped: int = 0
    failures: list[Failure] = field(default_factory=list)
    failure_count: int = 0
    elapsed: float = 0.0
    halted: bool = False
    timed_out: bool = False
    error: str | None = None  # the file could not be parsed or the connection not opened

    @property
    def run(self) -> int:
        return self.statements_run + self.queries_run

    @property
    def passed(self) -> int:
        return self.statements_passed + self.queries_passed

    @property
    def ok(self) -> bool:
        return self.failure_count == 0 and self.error is None and not self.timed_out

    def fail(self, failure: Failure) -> None:
        self.failure_count += 1
        if len(self.failures) < MAX_DETAILED_FAILURES:
            self.failures.append(failure)


class _BrokenConnection(Exception):
    """No cursor to run a record on: a harness problem, so ``statement error`` must not
    count it as the expected error."""


class _FileRun:
    """The state of one script on one connection: threshold, labels, the shared cursor."""

    def __init__(self, con: Any, result: FileResult) -> None:
        self.con = con
        self.cursor: Any = None
        self.result = result
        self.labels: dict[str, tuple[str, int]] = {}  # label -> (result hash, first line)

    def _cursor(self) -> Any:
        if self.cursor is None:
            try:
                self.cursor = self.con.cursor()
            except Exception as exc:
                raise _BrokenConnection(f"cursor() failed: {_error_text(exc)}") from exc
        return self.cursor

    def _drop_cursor(self) -> None:
        """A cursor that raised may be unusable in some drivers; the next record gets a new
        one."""
        cursor, self.cursor = self.cursor, None
        if cursor is not None:
            with contextlib.suppress(Exception):
                cursor.close()

    def statement(self, st: Statement) -> bool:
        result = self.result
        cur = self._cursor()
        result.statements_run += 1
        try:
            for sql in split_statements(st.sql):
                cur.execute(sql)
                if cur.description is not None:
                    cur.fetchall()  # sqlite3_exec runs each statement to completion
        except Exception as exc:
            self._drop_cursor()
            if st.expect_error:
                result.statements_passed += 1
                return True
            result.fail(Failure(st.line, st.sql, "statement failed", "ok", _error_text(exc)))
            return False
        if not st.expect_error:
            result.statements_passed += 1
            return True
        result.fail(Failure(st.line, st.sql, "statement succeeded", "an error", "ok"))
        return False

    def query(self, q: Query) -> bool:
        result = self.result
        cur = self._cursor()
        result.queries_run += 1
        try:
            cur.execute(q.sql)
            description = cur.description
            rows = cur.fetchall()
        except Exception as exc:
            self._drop_cursor()
            result.fail(Failure(q.line, q.sql, "query failed", q.expected_text, _error_text(exc)))
            return False
        width = len(description) if description is not None else (len(rows[0]) if rows else 0)
        if width != len(q.types) and (rows or description is not None):
            got = f"{width} columns"
            message = f"wrong number of columns for types {q.types}"
            result.fail(Failure(q.line, q.sql, message, f"{len(q.types)} columns", got))
            return False
        try:
            values = _format_rows(rows, q.types, q.sort_mode)
        except ValueError as exc:  # a row narrower or wider than the first
            result.fail(Failure(q.line, q.sql, "ragged rows", q.expected_text, str(exc)))
            return False
        digest = ""
        if q.expected_hash is not None:
            digest = result_hash(values)
            if digest != q.expected_hash or len(values) != q.expected_count:
                got = f"{len(values)} values hashing to {digest}\n{_preview(values)}"
                result.fail(Failure(q.line, q.sql, "wrong result hash", q.expected_text, got))
                return False
        elif q.expected_values is not None and tuple(values) != q.expected_values:
            message = "wrong result"
            if len(values) != len(q.expected_values):
                message += f" ({len(values)} values, expected {len(q.expected_values)})"
            result.fail(Failure(q.line, q.sql, message, q.expected_text, _preview(values)))
            return False
        if q.label is not None:
            digest = digest or result_hash(values)
            first = self.labels.setdefault(q.label, (digest, q.line))
            if first[0] != digest:
                message = f"{q.label} differs from its result at line {first[1]}"
                got = f"{len(values)} values hashing to {digest}"
                result.fail(Failure(q.line, q.sql, message, f"hash {first[0]}", got))
                return False
        result.queries_passed += 1
        return True


def _quietly(action: Callable[[], object]) -> None:
    """Run ``action`` from the timeout thread, which has nobody to report an error to."""
    with contextlib.suppress(Exception):
        action()


def _error_text(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def run_file(
    path: str | Path,
    connect: Callable[[], Any],
    engine: str,
    *,
    stop_on_first_failure: bool = False,
    timeout_per_file: float | None = None,
) -> FileResult:
    """Run one script on a fresh connection from ``connect()``.

    ``engine`` is the name matched by skipif/onlyif. With ``timeout_per_file`` the file
    stops at the first record that ends after the deadline; a connection with an
    ``interrupt()`` method (sqlite3's) is also interrupted then, so one slow query cannot
    hang CI.
    """
    start = time.perf_counter()
    result = FileResult(str(path))
    try:
        records = parse_file(path)
    except (OSError, ParseError) as exc:
        result.error = str(exc)
        result.elapsed = time.perf_counter() - start
        return result
    try:
        con = connect()
    except Exception as exc:
        result.error = f"connect failed: {_error_text(exc)}"
        result.elapsed = time.perf_counter() - start
        return result
    deadline = math.inf if timeout_per_file is None else start + timeout_per_file
    timer: threading.Timer | None = None
    interrupt = getattr(con, "interrupt", None)
    if timeout_per_file is not None and callable(interrupt):
        timer = threading.Timer(timeout_per_file, _quietly, (interrupt,))
        timer.daemon = True
        timer.start()
    run = _FileRun(con, result)
    try:
        for record in records:
            if record.conditions and not applies(record, engine):
                result.skipped += 1
                continue
            if isinstance(record, Query):
                ok = run.query(record)
            elif isinstance(record, Statement):
                ok = run.statement(record)
            elif record.kind == "halt":
                result.halted = True
                break
            else:
                # The expected block's own form (values or hash) decides the comparison: the
                # threshold only shaped how the file was written, and select1/select2 were
                # written with the C runner's -ht 8 flag and have no hash-threshold record.
                ok = True
            if time.perf_counter() > deadline:
                result.timed_out = True
                result.error = f"timed out after {timeout_per_file:g} s at line {record.line}"
                break
            if not ok and stop_on_first_failure:
                break
    except _BrokenConnection as exc:
        result.error = str(exc)
    finally:
        if timer is not None:
            timer.cancel()
        run._drop_cursor()
        close = getattr(con, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                close()
    result.elapsed = time.perf_counter() - start
    return result


def collect_test_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, directories expanded to their ``*.test`` files (sorted, recursive)."""
    found: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*.test") if p.is_file()))
        else:
            found.append(path)
    return found


def run_paths(
    paths: Iterable[str | Path],
    connect: Callable[[], Any],
    engine: str,
    *,
    stop_on_first_failure: bool = False,
    timeout_per_file: float | None = None,
    progress: Callable[[FileResult], None] | None = None,
) -> list[FileResult]:
    """Run every file under ``paths``; ``stop_on_first_failure`` also stops the whole run."""
    results: list[FileResult] = []
    for path in collect_test_files(paths):
        result = run_file(
            path,
            connect,
            engine,
            stop_on_first_failure=stop_on_first_failure,
            timeout_per_file=timeout_per_file,
        )
        results.append(result)
        if progress is not None:
            progress(result)
        if stop_on_first_failure and not result.ok:
            break
    return results


def _percent(passed: int, run: int) -> str:
    if run == 0:
        return "(   n/a)"
    # Rounded down so that 100.0% is only printed when everything passed.
    return f"({math.floor(passed * 1000 / run) / 10:5.1f}%)"


def _summary_line(
    name: str, width: int, sp: int, sn: int, qp: int, qn: int, secs: float, note: str
) -> str:
    return (
        f"{name:<{width}}  statements {f'{sp}/{sn}':>11}  queries {f'{qp}/{qn}':>13}  "
        f"{_percent(sp + qp, sn + qn)}  {secs:7.2f}s{note}"
    )


def _note(result: FileResult) -> str:
    notes = []
    if result.skipped:
        notes.append(f"skipped {result.skipped}")
    if result.halted:
        notes.append("halted")
    if result.error:
        notes.append(result.error)
    return f"  [{'; '.join(notes)}]" if notes else ""


def format_report(results: Sequence[FileResult], *, failures: int = 0) -> str:
    """One line per file and a total; then up to ``failures`` failure details per file."""
    width = max([len(r.path) for r in results] + [5])
    lines = [
        _summary_line(
            r.path,
            width,
            r.statements_passed,
            r.statements_run,
            r.queries_passed,
            r.queries_run,
            r.elapsed,
            _note(r),
        )
        for r in results
    ]
    lines.append(
        _summary_line(
            "TOTAL",
            width,
            sum(r.statements_passed for r in results),
            sum(r.statements_run for r in results),
            sum(r.queries_passed for r in results),
            sum(r.queries_run for r in results),
            sum(r.elapsed for r in results),
            f"  [{len(results)} files, {sum(not r.ok for r in results)} not passing]",
        )
    )
    for r in results:
        for failure in r.failures[:failures]:
            lines.append(failure.describe(r.path))
        if failures and r.failure_count > min(failures, len(r.failures)):
            lines.append(f"{r.path}: ... {r.failure_count} failures in all")
    return "\n".join(lines)


def sqlite_connect() -> sqlite3.Connection:
    """The reference engine in autocommit mode, as the C runner drives SQLite, so that
    scripts' own BEGIN/COMMIT work."""
    return sqlite3.connect(":memory:", isolation_level=None)


def alopex_connect() -> Any:
    """Our engine; imported lazily so the runner works before (and without) it."""
    import alopex

    return alopex.connect(":memory:")


_ENGINES: dict[str, Callable[[], Any]] = {"sqlite": sqlite_connect, "alopex": alopex_connect}


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: run files and directories, print the report; 0 when all pass."""
    parser = argparse.ArgumentParser(
        prog="python -m alopex.testing.sqllogictest", description=main.__doc__
    )
    parser.add_argument("paths", nargs="+", help="*.test files or directories")
    parser.add_argument("--engine", choices=sorted(_ENGINES), default="alopex")
    parser.add_argument(
        "--as",
        dest="name",
        help="engine name for skipif/onlyif (default: the --engine name)",
    )
    parser.add_argument("--stop", action="store_true", help="stop at the first failure")
    parser.add_argument("--timeout", type=float, help="seconds allowed per file")
    parser.add_argument(
        "--failures", type=int, default=3, metavar="N", help="failure details per file"
    )
    parser.add_argument("--quiet", action="store_true", help="no per-file progress on stderr")
    args = parser.parse_args(argv)

    def progress(result: FileResult) -> None:
        if not args.quiet:
            print(f"{result.path}: {result.elapsed:.2f}s", file=sys.stderr, flush=True)

    results = run_paths(
        args.paths,
        _ENGINES[args.engine],
        args.name or args.engine,
        stop_on_first_failure=args.stop,
        timeout_per_file=args.timeout,
        progress=progress,
    )
    print(format_report(results, failures=args.failures))
    return 0 if results and all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
