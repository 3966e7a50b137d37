"""SQLite's sqllogictest corpus (../shared/sqllogictest) against Alopex, file by file.

Each file must pass at least as many records as ``sqllogictest_baseline.json`` records
(a ratchet: improvements raise the numbers, regressions fail). The report with per-file
counts is printed at the end of the run; docs/sql.md lists what still fails and why.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import alopex
from alopex.testing.sqllogictest import collect_test_files, run_file

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "sqllogictest"
BASELINE = json.loads((Path(__file__).with_name("sqllogictest_baseline.json")).read_text())
FILES = (
    sorted(str(p.relative_to(CORPUS)) for p in collect_test_files([CORPUS]))
    if (CORPUS.is_dir())
    else []
)


def connect() -> alopex.Connection:
    db = alopex.connect(":memory:")
    db.autocommit = True  # as the reference runner drives SQLite
    return db


def test_corpus_is_present() -> None:
    assert CORPUS.is_dir(), f"the sqllogictest corpus is missing: {CORPUS}"
    assert len(FILES) >= 20


def test_baseline_meets_the_target() -> None:
    run = sum(entry["run"] for entry in BASELINE.values())
    passed = sum(entry["passed"] for entry in BASELINE.values())
    assert passed / run >= 0.99, f"{passed}/{run}"


@pytest.mark.parametrize("name", FILES)
def test_file(name: str, request: pytest.FixtureRequest) -> None:
    result = run_file(CORPUS / name, connect, "alopex", timeout_per_file=900)
    row = dataclasses.asdict(result)
    row["path"] = name
    row.pop("failures")
    request.node.user_properties.append(("sqllogictest", json.dumps(row, default=str)))
    passed = result.statements_passed + result.queries_passed
    run = result.statements_run + result.queries_run
    expected = BASELINE.get(name, {"passed": run, "run": run})
    details = "\n".join(f"  line {f.line}: {f.message}" for f in result.failures[:5])
    assert result.error is None, result.error
    assert passed >= expected["passed"], (
        f"{name}: {passed}/{run} pass, the baseline is {expected['passed']}/{expected['run']}"
        f"\n{details}"
    )


#: files mixing bulk loads, deletes and scans, rerun where every scan goes through the mirror
ON_ROCKS = ["select1.test", "index/delete/10/slt_good_0.test", "random/groupby/slt_good_0.test"]


@pytest.mark.parametrize("name", ON_ROCKS)
def test_file_on_rocks_through_the_column_mirror(name: str, tmp_path: Path) -> None:
    databases = iter(range(1_000_000))
    config = {"storage": {"engine": "rocks", "sync": "off"}, "sql": {"column_mirror_rows": 1}}

    def connect_rocks() -> alopex.Connection:
        db = alopex.connect(tmp_path / f"db{next(databases)}", config=config)
        db.autocommit = True
        return db

    result = run_file(CORPUS / name, connect_rocks, "alopex", timeout_per_file=900)
    assert result.error is None, result.error
    assert result.failures == [], result.failures[:5]
    assert result.statements_run + result.queries_run > 1000
