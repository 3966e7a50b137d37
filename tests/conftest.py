"""Cross-plugin fixtures (every installed persistent storage engine) and the
sqllogictest report, printed at the end of the run (here, so that the xdist controller
loads it too)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from alopex.plugins import PluginSet

PERSISTENT_ENGINES = sorted(
    name
    for name, backend in PluginSet.load().storage_engines.items()
    if "persistent" in backend.capabilities
)


@pytest.fixture(params=PERSISTENT_ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """The name of each installed persistent engine in turn."""
    return str(request.param)


_RESULTS: list[dict[str, Any]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call":
        return
    for name, value in report.user_properties:
        if name == "sqllogictest":
            _RESULTS.append(json.loads(value))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _RESULTS:
        return
    write = terminalreporter.write_line
    terminalreporter.section("sqllogictest (engine alopex)")
    total_run = total_passed = 0
    for row in sorted(_RESULTS, key=lambda r: r["path"]):
        run = row["statements_run"] + row["queries_run"]
        passed = row["statements_passed"] + row["queries_passed"]
        total_run += run
        total_passed += passed
        share = f"{100 * passed / run:6.2f}%" if run else "   n/a"
        write(
            f"{row['path']:<48} statements {row['statements_passed']:>5}/"
            f"{row['statements_run']:<5} queries {row['queries_passed']:>6}/"
            f"{row['queries_run']:<6} {share}  {row['elapsed']:6.1f}s"
        )
    share = 100 * total_passed / total_run if total_run else 0.0
    write(f"{'TOTAL':<48} {total_passed}/{total_run} executed records pass ({share:.2f}%)")
