"""The ``alopex`` command line, run as a real process and through click's runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from alopex.cli import main

ALOPEX = [sys.executable, "-m", "alopex"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([*ALOPEX, *args], capture_output=True, text=True, env=env, timeout=120)


def test_kv_round_trip_in_real_processes(tmp_path: Path) -> None:
    db = str(tmp_path / "db")
    assert run("kv", "put", db, "fox", "arctic").returncode == 0
    assert run("kv", "put", db, "wolf", "grey").returncode == 0
    got = run("kv", "get", db, "fox")
    assert (got.returncode, got.stdout) == (0, "arctic\n")
    scan = run("kv", "scan", db)
    assert scan.stdout.index("fox") < scan.stdout.index("wolf")
    assert "wolf" not in run("kv", "scan", db, "--prefix", "f").stdout
    assert run("kv", "scan", db, "--reverse").stdout.index("wolf") < scan.stdout.index("fox") + 1
    assert run("kv", "delete", db, "fox").returncode == 0
    missing = run("kv", "get", db, "fox")
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_hex_keys_and_binary_values(tmp_path: Path) -> None:
    db = str(tmp_path / "db")
    runner = CliRunner()
    assert runner.invoke(main, ["kv", "put", db, "00ff", "fffe", "--hex"]).exit_code == 0
    result = runner.invoke(main, ["kv", "get", db, "00ff", "--hex"])
    assert result.output == "fffe\n"
    assert "0xfffe" in runner.invoke(main, ["kv", "scan", db]).output


def test_info_shows_engine_and_sizes(tmp_path: Path) -> None:
    db = str(tmp_path / "db")
    run("kv", "put", db, "k", "v")
    result = run("info", db)
    assert result.returncode == 0, result.stderr
    assert "engine" in result.stdout and "rocks" in result.stdout
    assert "sync" in result.stdout and "full" in result.stdout


def test_plugins_lists_what_each_provides(tmp_path: Path) -> None:
    result = run("plugins")
    assert result.returncode == 0, result.stderr
    assert "builtin" in result.stdout and "alopex-kernel" in result.stdout
    assert "storage:rocks" in result.stdout and "alopex-storage-rocks" in result.stdout
    config = tmp_path / "memory.toml"
    config.write_text('[storage]\nengine = "memory"\n')
    lines = run("plugins", "--config", str(config)).stdout.splitlines()
    rocks_line = next(line for line in lines if "alopex-storage-rocks" in line)
    assert "yes" not in rocks_line


def test_errors_are_one_line_not_tracebacks(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    result = run("kv", "put", str(notes), "k", "v")
    assert result.returncode == 1
    assert "NotADatabase" in result.stderr and "Traceback" not in result.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('[storage]\nengine = "lsm"\n[plugins]\nblock = ["lsm"]\n')  # as if missing
    result = run("kv", "put", str(tmp_path / "db"), "k", "v", "--config", str(bad))
    assert "pip install 'alopex[lsm]'" in result.stderr
    assert run("info", str(tmp_path / "nowhere")).returncode != 0


def test_demo_runs(tmp_path: Path) -> None:
    result = run("demo", str(tmp_path / "demo.db"))
    assert result.returncode == 0, result.stderr
    assert "kitsune" in result.stdout and "arctic fox" in result.stdout


def test_vector_index_builds_with_the_create_statement(tmp_path: Path) -> None:
    """`alopex sql` builds a new HNSW index right away (progress bar on a terminal) rather
    than on the first query, and the index is saved when the database closes."""
    import numpy as np

    import alopex

    path = tmp_path / "db"
    with alopex.connect(path) as db:
        db.execute("CREATE TABLE docs(id INTEGER PRIMARY KEY, e VECTOR(8))")
        db.table("docs").add(
            {"id": np.arange(500), "e": np.eye(8, dtype=np.float32)[np.arange(500) % 8]}
        )
    result = run("sql", str(path), "CREATE INDEX ix ON docs USING HNSW (e) WITH (m=8)")
    assert result.returncode == 0, result.stderr
    assert [p.name for p in (path / "indexes").iterdir()] != []
    query = "SELECT id FROM docs ORDER BY vector_distance(e, '[0,0,1,0,0,0,0,0]') LIMIT 1"
    result = run("sql", str(path), query, "--format", "csv")
    assert result.returncode == 0 and int(result.stdout.splitlines()[1]) % 8 == 2
