"""Parse SQL with sqlglot (SQLite dialect), number the placeholders, cache by text.

Parse errors become ``ProgrammingError`` with the line, column and offending token.
Statements sqlglot does not model (SAVEPOINT, RELEASE, EXPLAIN, REPLACE INTO, END) are
recognised here first.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from typing import ClassVar

import attrs
import sqlglot
from sqlglot import TokenType, exp
from sqlglot.dialects.sqlite import SQLite
from sqlglot.errors import ParseError, TokenError

from alopex.errors import NotSupportedError, ProgrammingError

logging.getLogger("sqlglot").setLevel(logging.ERROR)


class AlopexDialect(SQLite):
    """SQLite's dialect, plus ``VECTOR(384, COSINE)`` (sqlglot reads a two-part VECTOR as
    Snowflake's ``VECTOR(element type, size)``) and ``[0.1, 0.2]`` vector literals (SQLite
    would read brackets as a quoted name; double quotes and backticks still quote names)."""

    class Tokenizer(SQLite.Tokenizer):
        IDENTIFIERS: ClassVar = [i for i in SQLite.Tokenizer.IDENTIFIERS if i != ("[", "]")]

    class Parser(SQLite.Parser):  # type: ignore[misc,valid-type]
        def _parse_type_size(self) -> exp.DataTypeParam | None:
            if self._curr is not None and self._curr.token_type == TokenType.INNER:
                self._advance()  # VECTOR(n, INNER): a metric, not a join keyword here
                return self.expression(exp.DataTypeParam(this=exp.var("INNER")))  # type: ignore[no-any-return]
            return super()._parse_type_size()  # type: ignore[no-any-return]

        def _parse_vector_expressions(self, expressions: list[exp.Expr]) -> list[exp.Expr]:
            first = expressions[0].this if expressions else None
            if isinstance(first, exp.Literal) and first.is_int:
                return expressions  # VECTOR(dimension, metric)
            return super()._parse_vector_expressions(expressions)  # type: ignore[no-any-return]


DIALECT = AlopexDialect


@attrs.frozen
class Special:
    """A statement handled without sqlglot: ``kind`` is savepoint/release/rollback_to..."""

    kind: str
    name: str = ""


@attrs.frozen
class Explain:
    statement: exp.Expr
    analyze: bool


Statement = exp.Expr | Special | Explain

_SAVEPOINT = re.compile(r"^\s*SAVEPOINT\s+(\w+)\s*;?\s*$", re.I)
_RELEASE = re.compile(r"^\s*RELEASE\s+(?:SAVEPOINT\s+)?(\w+)\s*;?\s*$", re.I)
_ROLLBACK_TO = re.compile(
    r"^\s*ROLLBACK\s+(?:TRANSACTION\s+)?TO\s+(?:SAVEPOINT\s+)?(\w+)\s*;?\s*$", re.I
)
_END = re.compile(r"^\s*END(\s+TRANSACTION)?\s*;?\s*$", re.I)
_REINDEX = re.compile(r"^\s*REINDEX\b", re.I)
_EXPLAIN = re.compile(r"^\s*EXPLAIN\s+(ANALYZE\s+)?", re.I)
_REPLACE = re.compile(r"^\s*REPLACE\s+INTO\b", re.I)
_TRIGGER = re.compile(r"^\s*(CREATE|DROP)\s+(TEMP\s+|TEMPORARY\s+)?TRIGGER\b", re.I)


@lru_cache(maxsize=2048)
def parse(sql: str) -> tuple[Statement, ...]:
    """Every statement in ``sql``; the result is cached, so treat it as read-only."""
    match = _SAVEPOINT.match(sql)
    if match:
        return (Special("savepoint", match.group(1)),)
    match = _RELEASE.match(sql)
    if match:
        return (Special("release", match.group(1)),)
    match = _ROLLBACK_TO.match(sql)
    if match:
        return (Special("rollback_to", match.group(1)),)
    if _END.match(sql):
        return (exp.Commit(),)
    if _REINDEX.match(sql):
        target = _REINDEX.sub("", sql, count=1).strip().rstrip(";").strip()
        return (Special("reindex", target),)
    if _TRIGGER.match(sql):
        raise NotSupportedError("triggers are not supported")
    match = _EXPLAIN.match(sql)
    if match:
        inner = parse(sql[match.end() :])
        if len(inner) != 1 or not isinstance(inner[0], exp.Expr):
            raise ProgrammingError("EXPLAIN takes one statement")
        return (Explain(inner[0], bool(match.group(1))),)
    if _REPLACE.match(sql):
        sql = _REPLACE.sub("INSERT OR REPLACE INTO", sql, count=1)
    try:
        statements = [s for s in sqlglot.parse(sql, read=DIALECT) if s is not None]
    except ParseError as err:
        raise _syntax_error(sql, err) from None
    except TokenError as err:
        raise _token_error(sql, err) from None
    for statement in statements:
        if isinstance(statement, exp.Command):
            raise ProgrammingError(
                f"syntax error or unsupported statement near {statement.name!r}: {sql.strip()[:80]}"
            )
        _number_placeholders(statement)
    return tuple(statements)


def _token_error(sql: str, err: TokenError) -> ProgrammingError:
    """Tokenizer errors carry no position; an unterminated quote is the usual cause."""
    offset = _unterminated_quote(sql)
    if offset is None:
        return ProgrammingError(f"syntax error: {err}")
    line = sql.count("\n", 0, offset) + 1
    column = offset - (sql.rfind("\n", 0, offset) + 1) + 1
    error = ProgrammingError(
        f"syntax error at line {line}, column {column}: unterminated "
        f"{'string' if sql[offset] == chr(39) else 'quoted name'} starting with "
        f"{sql[offset : offset + 20]!r}"
    )
    error.line, error.column, error.token = line, column, sql[offset]  # type: ignore[attr-defined]
    return error


def _unterminated_quote(sql: str) -> int | None:
    opened: int | None = None
    quote = ""
    index = 0
    while index < len(sql):
        ch = sql[index]
        if opened is None:
            if ch in "'\"`":
                opened, quote = index, ch
            elif sql.startswith("--", index):
                end = sql.find("\n", index)
                index = len(sql) if end == -1 else end
        elif ch == quote:
            if sql.startswith(quote * 2, index):
                index += 1  # doubled quote inside the literal
            else:
                opened = None
        index += 1
    return opened


def _syntax_error(sql: str, err: ParseError) -> ProgrammingError:
    detail = err.errors[0] if err.errors else {}
    line, col = detail.get("line"), detail.get("col")
    token = detail.get("highlight") or ""
    description = detail.get("description") or str(err)
    where = f" at line {line}, column {col}" if line is not None else ""
    near = f" near {token!r}" if token else ""
    error = ProgrammingError(f"syntax error{where}{near}: {description}")
    error.line, error.column, error.token = line, col, token  # type: ignore[attr-defined]
    return error


def _number_placeholders(statement: exp.Expr) -> None:
    """Give each ``?`` its position, in source order (depth-first, left to right)."""
    count = 0
    for node in statement.walk(bfs=False):
        if isinstance(node, exp.Placeholder):
            node.meta["index"] = count
            count += 1
    statement.meta["placeholders"] = count
