"""The sqllogictest runner: parsing, value printing, failure reports, and the shared corpus
run against Python's sqlite3, which proves the runner reads the format as SQLite does."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest

from alopex.testing.sqllogictest import (
    Condition,
    Control,
    FileResult,
    ParseError,
    Query,
    Statement,
    collect_test_files,
    format_report,
    format_value,
    main,
    parse_file,
    parse_text,
    result_hash,
    run_file,
    run_paths,
    split_statements,
    sqlite_connect,
)

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "sqllogictest"
needs_corpus = pytest.mark.skipif(
    not CORPUS.is_dir(), reason=f"the shared sqllogictest corpus is not at {CORPUS}"
)

# The one record of the corpus that Python's sqlite3 legitimately fails. The file expects
# no rows from a sum() that overflows: SQLite raises "integer overflow" there, and the
# expected block was written by the C runner, whose SQLite driver stops reading rows at an
# error from sqlite3_step and reports the rows so far (none) instead of a failure. A query
# that raises is a failure for this runner, as for the C runner's own error path.
KNOWN_SQLITE_FAILURES = {"evidence/slt_lang_aggfunc.test": [480]}


def _md5_lines(values: list[str]) -> str:
    """The hash rule written out independently: every value followed by a newline."""
    return hashlib.md5("".join(v + "\n" for v in values).encode()).hexdigest()


ALL_ROWS = ["1", "x", "2", "(empty)", "3", "NULL", "4", "tab@here", "5", "h@@llo"]

SCRIPT = """\
# A comment before anything; results above 9 values are hashed.
hash-threshold 9

statement ok
CREATE TABLE t(a INTEGER, b TEXT, c REAL)

statement ok
INSERT INTO t VALUES(1, 'x', 1.5), (2, '', NULL), (3, NULL, -2.25)
# A comment inside a record does not end it.

statement ok
INSERT INTO t VALUES(4, 'tab' || char(9) || 'here', 0.0005);
INSERT INTO t VALUES(5, 'h\u00e9llo', 7)

statement error
SELECT * FROM no_such_table

skipif sqlite
statement ok
THIS IS NOT SQL

onlyif postgresql
skipif mysql
query I nosort
SELECT 'never'
----
oops

onlyif sqlite # a comment after the engine name
query ITR nosort
SELECT a, b, c FROM t WHERE a <= 3 ORDER BY a
----
1
x
1.500
2
(empty)
NULL
3
NULL
-2.250

query T rowsort
SELECT b FROM t WHERE a >= 4
----
h@@llo
tab@here

query I valuesort
SELECT a FROM t WHERE a < 3 UNION ALL SELECT 10 - a FROM t WHERE a < 3
----
1
2
8
9

query IT rowsort label-all
SELECT a, b FROM t
----
10 values hashing to {hash}

query IT rowsort label-all
SELECT a, b FROM t ORDER BY a DESC
----
10 values hashing to {hash}

query I nosort
SELECT a FROM t WHERE a > 100
----

query R nosort
SELECT c FROM t WHERE a IN (4, 5) ORDER BY a
----
0.001
7.000

query III nosort
SELECT 7.9, -7.9, '12abc'
----
7
-7
12

query IR nosort
SELECT 'abc', NULL
----
0
NULL

query T nosort
SELECT 1.0
----
1.0

query I
SELECT 1

onlyif mssql
halt

halt

query I nosort
SELECT 'not reached'
----
1
""".replace("{hash}", _md5_lines(ALL_ROWS))


def _line(text: str, needle: str, after: int = 0) -> int:
    """1-based line number of the first line equal to ``needle`` after line ``after``."""
    lines = text.splitlines()
    return lines.index(needle, after) + 1


def _write(tmp_path: Path, text: str, name: str = "script.test") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_parse_every_record_kind(tmp_path: Path) -> None:
    records = parse_file(_write(tmp_path, SCRIPT))
    kinds = [type(r).__name__ for r in records]
    assert kinds == ["Control"] + ["Statement"] * 5 + ["Query"] * 12 + ["Control"] * 2 + ["Query"]

    threshold, create, insert, two, error, skipped = records[:6]
    assert threshold == Control("hash-threshold", 9, 2)
    assert create == Statement(
        "CREATE TABLE t(a INTEGER, b TEXT, c REAL)", False, _line(SCRIPT, "statement ok")
    )
    assert isinstance(insert, Statement)
    assert "comment" not in insert.sql  # comment lines vanish even inside a record
    assert isinstance(two, Statement) and two.sql.count("\n") == 1
    assert isinstance(error, Statement) and error.expect_error
    assert isinstance(skipped, Statement)
    assert skipped.conditions == (Condition("skipif", "sqlite"),)
    assert skipped.line == _line(SCRIPT, "skipif sqlite") + 1  # the record's own line

    never = records[6]
    assert isinstance(never, Query)
    assert never.conditions == (Condition("onlyif", "postgresql"), Condition("skipif", "mysql"))
    assert never.expected_values == ("oops",)

    itr = records[7]
    assert isinstance(itr, Query)
    assert (itr.types, itr.sort_mode, itr.label) == ("ITR", "nosort", None)
    assert itr.conditions == (Condition("onlyif", "sqlite"),)
    assert itr.expected_values is not None and itr.expected_values[3:6] == (
        "2",
        "(empty)",
        "NULL",
    )
    assert itr.sql == "SELECT a, b, c FROM t WHERE a <= 3 ORDER BY a"

    rowsort, valuesort, labeled, labeled_again, empty = records[8:13]
    assert isinstance(rowsort, Query) and rowsort.sort_mode == "rowsort"
    assert isinstance(valuesort, Query) and valuesort.sort_mode == "valuesort"
    for q in (labeled, labeled_again):
        assert isinstance(q, Query)
        assert q.label == "label-all"
        assert (q.expected_values, q.expected_hash, q.expected_count) == (
            None,
            _md5_lines(ALL_ROWS),
            10,
        )
    assert isinstance(empty, Query) and empty.expected_values == ()

    no_block = records[17]
    assert isinstance(no_block, Query)
    assert (no_block.sql, no_block.expected_values, no_block.expected_hash) == (
        "SELECT 1",
        None,
        None,
    )
    conditional_halt, halt = records[18:20]
    assert conditional_halt == Control(
        "halt", None, _line(SCRIPT, "halt"), (Condition("onlyif", "mssql"),)
    )
    assert halt == Control("halt", None, _line(SCRIPT, "halt", _line(SCRIPT, "halt")))


def test_crlf_and_whitespace_only_lines_separate_records() -> None:
    text = (
        "statement ok\r\nCREATE TABLE t(a)\r\n  \t\r\nquery I nosort\r\nSELECT 1\r\n----\r\n1\r\n"
    )
    first, second = parse_text(text)
    assert first == Statement("CREATE TABLE t(a)", False, 1)
    assert isinstance(second, Query) and second.expected_values == ("1",)
    assert second.line == 4


def test_sqlite_passes_the_inline_script(tmp_path: Path) -> None:
    result = run_file(_write(tmp_path, SCRIPT), sqlite_connect, "sqlite")
    assert result.failures == []
    assert result.ok and result.halted
    assert (result.statements_run, result.statements_passed) == (4, 4)
    assert (result.queries_run, result.queries_passed) == (11, 11)
    assert result.skipped == 3  # skipif sqlite, onlyif postgresql, onlyif mssql halt


def test_engine_name_selects_records(tmp_path: Path) -> None:
    # As "postgresql" the bogus statement runs (and fails), the 'never' query runs and the
    # sqlite-only ITR query is skipped; matching ignores case.
    result = run_file(_write(tmp_path, SCRIPT), sqlite_connect, "PostgreSQL")
    assert result.skipped == 2
    assert [f.line for f in result.failures] == [
        _line(SCRIPT, "skipif sqlite") + 1,
        _line(SCRIPT, "skipif mysql") + 1,
    ]


def test_wrong_results_are_reported_with_line_and_both_values(tmp_path: Path) -> None:
    text = """\
statement ok
CREATE TABLE t(a INTEGER)

statement ok
INSERT INTO t VALUES(1),(2)

query I rowsort
SELECT a FROM t
----
1
3

query I nosort
SELECT a FROM t ORDER BY a
----
2 values hashing to 0123456789abcdef0123456789abcdef

statement ok
INSERT INTO nowhere VALUES(1)

statement error
SELECT 1

query I nosort
SELECT * FROM nowhere
----
1

query II nosort
SELECT 1
----
1
1

query I nosort
SELECT 1
----
1
"""
    path = _write(tmp_path, text)
    result = run_file(path, sqlite_connect, "sqlite")
    assert not result.ok
    assert result.failure_count == 6
    assert (result.statements_run, result.statements_passed) == (4, 2)
    assert (result.queries_run, result.queries_passed) == (5, 1)
    wrong, hashed, statement, succeeded, failed, columns = result.failures

    assert wrong.line == 7 and wrong.sql == "SELECT a FROM t"
    assert (wrong.expected, wrong.got) == ("1\n3", "1\n2")
    assert hashed.line == 13
    assert hashed.expected == "2 values hashing to 0123456789abcdef0123456789abcdef"
    assert hashed.got.startswith(f"2 values hashing to {_md5_lines(['1', '2'])}\n1\n2")
    assert statement.line == 18 and "no such table: nowhere" in statement.got
    assert succeeded.line == 21 and succeeded.message == "statement succeeded"
    assert failed.line == 24 and failed.expected == "1" and "nowhere" in failed.got
    assert columns.line == 29 and "columns" in columns.message

    report = format_report([result], failures=20)
    assert f"{path}:7: wrong result" in report
    assert "statements         2/4  queries           1/5  ( 33.3%)" in report
    assert "expected: 1\n            3\n  got:      1\n            2" in report

    stopped = run_file(path, sqlite_connect, "sqlite", stop_on_first_failure=True)
    assert stopped.failure_count == 1 and stopped.queries_run == 1


def test_labels_must_agree(tmp_path: Path) -> None:
    text = """\
query I nosort label-x
SELECT 1

query I nosort label-x
SELECT 2
"""
    result = run_file(_write(tmp_path, text), sqlite_connect, "sqlite")
    assert result.queries_passed == 1
    (failure,) = result.failures
    assert failure.line == 4 and "label-x differs from its result at line 1" in failure.message


def test_failure_details_are_capped_but_counted(tmp_path: Path) -> None:
    text = "\n".join(f"query I nosort\nSELECT {i}\n----\n{i + 1}\n" for i in range(30))
    result = run_file(_write(tmp_path, text), sqlite_connect, "sqlite")
    assert result.failure_count == 30 and len(result.failures) == 20


def test_parse_errors(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match=r"<text>:4: unknown record type 'frobnicate'"):
        parse_text("statement ok\nSELECT 1\n\nfrobnicate\n")
    with pytest.raises(ParseError, match="query types"):
        parse_text("query IX nosort\nSELECT 1, 2\n")
    with pytest.raises(ParseError, match="sort mode"):
        parse_text("query I label-1\nSELECT 1\n")
    with pytest.raises(ParseError, match="ok or error"):
        parse_text("statement maybe\nSELECT 1\n")
    result = run_file(_write(tmp_path, "halt\n\nnonsense\n"), sqlite_connect, "sqlite")
    assert not result.ok and result.error is not None and ":3: unknown record" in result.error


def test_format_value_follows_the_column_type() -> None:
    assert [format_value(None, t) for t in "ITR"] == ["NULL"] * 3
    assert [format_value(math.nan, t) for t in "ITR"] == ["NULL"] * 3  # SQLite has no NaN
    # I: reals truncate toward zero, text gives its leading integer, bounds saturate.
    assert [format_value(v, "I") for v in (42, 2.7, -2.7, True, 1e30, -1e30)] == [
        "42",
        "2",
        "-2",
        "1",
        "9223372036854775807",
        "-9223372036854775808",
    ]
    assert [format_value(v, "I") for v in ("12abc", "  -7", "abc", "1.9", "", b"33")] == [
        "12",
        "-7",
        "0",
        "1",
        "0",
        "33",
    ]
    # R: three decimals, rounding half up the shortest decimal, at most 16 digits.
    assert [format_value(v, "R") for v in (7, 1.5, -0.0, 2.0005, -0.0004, "3.25x", "z")] == [
        "7.000",
        "1.500",
        "0.000",
        "2.001",
        "-0.000",
        "3.250",
        "0.000",
    ]
    assert format_value(-(2.0**63), "R") == "-9223372036854776000.000"
    assert format_value(math.inf, "R") == "Inf"
    # T: SQLite's text of the value; '' is (empty); each non-printable byte is '@'.
    assert [format_value(v, "T") for v in ("abc", "", 5, 1.0, 0.1 + 0.2, 1e20)] == [
        "abc",
        "(empty)",
        "5",
        "1.0",
        "0.3",
        "1.0e+20",
    ]
    assert [format_value(v, "T") for v in ("a\tb\n", "h\u00e9llo", "\u20ac", b"a\xffb")] == [
        "a@b@",
        "h@@llo",
        "@@@",
        "a@b",
    ]
    assert format_value("ab\x00cd", "T") == "ab"  # the C runner sees a C string
    assert format_value(b"", "T") == "(empty)"


def test_result_hash() -> None:
    assert result_hash(["1", "x", "NULL"]) == hashlib.md5(b"1\nx\nNULL\n").hexdigest()
    assert result_hash([]) == hashlib.md5(b"").hexdigest()


def test_split_statements_keeps_triggers_and_strings_whole() -> None:
    assert split_statements("SELECT 1") == ["SELECT 1"]
    assert split_statements("SELECT ';';") == ["SELECT ';';"]
    assert split_statements("INSERT INTO t VALUES(1);\nDROP INDEX i;") == [
        "INSERT INTO t VALUES(1);",
        "DROP INDEX i;",
    ]
    trigger = "CREATE TRIGGER r AFTER INSERT ON t BEGIN DELETE FROM u; INSERT INTO u VALUES(1); END"
    assert split_statements(trigger + ";\nSELECT 2") == [trigger + ";", "SELECT 2"]


def test_timeout_interrupts_a_runaway_query(tmp_path: Path) -> None:
    text = """\
query I nosort
WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT count(*) FROM c
----
1

query I nosort
SELECT 1
----
1
"""
    result = run_file(_write(tmp_path, text), sqlite_connect, "sqlite", timeout_per_file=0.3)
    assert result.timed_out and not result.ok
    assert result.queries_run == 1 and result.elapsed < 5
    assert "interrupted" in result.failures[0].got


def test_each_file_gets_a_fresh_connection(tmp_path: Path) -> None:
    create = "statement ok\nCREATE TABLE t(a)\n"
    _write(tmp_path, create, "a.test")
    _write(tmp_path, create, "b.test")
    results = run_paths([tmp_path], sqlite_connect, "sqlite")
    assert [Path(r.path).name for r in results] == ["a.test", "b.test"]
    assert all(r.ok for r in results)


def test_a_broken_connection_is_an_error_not_an_expected_one(tmp_path: Path) -> None:
    path = _write(tmp_path, "statement error\nSELECT nonsense FROM nowhere\n")
    no_cursor = run_file(path, object, "sqlite")  # object() has no cursor()
    assert not no_cursor.ok and no_cursor.statements_passed == 0
    assert no_cursor.error is not None and no_cursor.error.startswith("cursor() failed")

    def refuse() -> object:
        raise ConnectionError("engine down")

    down = run_file(path, refuse, "sqlite")
    assert down.error == "connect failed: ConnectionError: engine down" and down.run == 0


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _write(tmp_path, "query I nosort\nSELECT 1\n----\n1\n", "good.test")
    assert main(["--engine", "sqlite", "--quiet", str(good)]) == 0
    out = capsys.readouterr().out
    assert "statements         0/0  queries           1/1  (100.0%)" in out
    assert out.splitlines()[-1].startswith("TOTAL")
    _write(tmp_path, "query I nosort\nSELECT 1\n----\n2\n", "bad.test")
    assert main(["--engine", "sqlite", "--quiet", str(tmp_path)]) == 1
    assert "bad.test:1: wrong result" in capsys.readouterr().out


def _relative(result: FileResult) -> str:
    return Path(result.path).relative_to(CORPUS).as_posix()


def _assert_sqlite_passes(results: list[FileResult]) -> None:
    """Every file passes except the known, explained failures, which fail exactly so."""
    assert results
    for result in results:
        name = _relative(result)
        known = KNOWN_SQLITE_FAILURES.get(name, [])
        assert result.error is None, f"{name}: {result.error}"
        assert [f.line for f in result.failures] == known, "\n".join(
            f.describe(name) for f in result.failures
        )
        assert result.passed == result.run - len(known)


@needs_corpus
def test_sqlite_passes_select1() -> None:
    result = run_file(CORPUS / "select1.test", sqlite_connect, "sqlite")
    _assert_sqlite_passes([result])
    assert result.queries_passed == result.queries_run == 1000


@needs_corpus
def test_sqlite_passes_the_evidence_files() -> None:
    results = run_paths([CORPUS / "evidence"], sqlite_connect, "sqlite")
    assert len(results) >= 12
    _assert_sqlite_passes(results)
    (aggfunc,) = [r for r in results if r.path.endswith("slt_lang_aggfunc.test")]
    (failure,) = aggfunc.failures
    assert failure.sql == "SELECT sum(x) FROM t1" and "integer overflow" in failure.got


@needs_corpus
def test_sqlite_passes_the_whole_corpus() -> None:
    """A few seconds: the whole shared corpus, so hashing, labels and sort modes are all
    checked against about a hundred thousand real expected results."""
    files = collect_test_files([CORPUS])
    assert any(p.name == "select2.test" for p in files)
    _assert_sqlite_passes(run_paths(files, sqlite_connect, "sqlite"))
