"""Drive the Rust Alopex DB (PyPI ``alopex``) as a benchmark peer.

The Rust package has the same import name as our project (``alopex``), so it
can never share an interpreter with us: it lives in its own virtual
environment (``bench/.venv-rust``) and every workload runs there as a
subprocess started with ``python -I`` (isolated mode), which ignores
``PYTHONPATH``/user site and keeps the current directory off ``sys.path``, so
our own ``alopex`` can never shadow it. Arguments go in as JSON on stdin and
results come back as JSON on the last line of stdout.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RUST_PACKAGE = "alopex"
RUST_VERSION = "0.8.16"
DEFAULT_TIMEOUT = 900.0
_TAIL_CHARS = 4000

# Embedded driver for run_rust_kv; it runs inside the Rust venv only.
# Timed sections exclude key/value generation. Choices, all measured on
# alopex 0.8.16 as the cheapest correct path:
# - put: one READ_WRITE txn per batch; commit() fdatasyncs the WAL, so every
#   batch is durable when commit returns.
# - get: ONE READ_ONLY txn (a snapshot) reused for all gets; a txn per get
#   cut gets/s by ~40% and measures txn setup rather than point reads.
# - scan: Transaction.scan_range(start, end, limit=scan_len) in a fresh
#   READ_ONLY txn; ``end`` is an exclusive bound past every key, so ``limit``
#   alone ends the scan, and page_size is as large as allowed (<= 10000) so a
#   scan takes as few native round trips as possible.
KV_DRIVER = r"""
import json
import random
import sys
import time

import alopex

a = json.loads(sys.stdin.read())
n = a["n_keys"]
batch = a["batch_size"]
n_gets = a["n_gets"]
n_scans = a["n_scans"]
scan_len = a["scan_len"]
seed = a["seed"]

keys = [b"key%013d" % i for i in range(n)]
value = random.Random(seed).randbytes(100)
order = list(keys)
random.Random(seed).shuffle(order)
rng = random.Random(seed + 1)
get_keys = [keys[rng.randrange(n)] for _ in range(n_gets)]
scan_starts = [keys[rng.randrange(n - scan_len + 1)] for _ in range(n_scans)]
END = b"key\xff"  # above every b"key<13 digits>" key; exclusive bound

out = {}
db = alopex.Database.open(a["path"])
RW = alopex.TxnMode.READ_WRITE
RO = alopex.TxnMode.READ_ONLY

t0 = time.perf_counter()
for s in range(0, n, batch):
    txn = db.begin(RW)
    put = txn.put
    for k in order[s:s + batch]:
        put(k, value)
    txn.commit()
out["put"] = n / (time.perf_counter() - t0)

if n_gets:
    txn = db.begin(RO)
    get = txn.get
    t0 = time.perf_counter()
    for k in get_keys:
        get(k)
    out["get"] = n_gets / (time.perf_counter() - t0)
    for k in get_keys[:16] + [keys[0], keys[-1]]:
        if get(k) != value:
            raise SystemExit("get verification failed for %r" % k)
    if get(b"key-missing") is not None:
        raise SystemExit("missing key returned a value")
    txn.rollback()

if n_scans:
    txn = db.begin(RO)
    if hasattr(txn, "scan_range"):
        scan = txn.scan_range
        page = min(scan_len, 10000)
        max_total = max(104857600, scan_len * 1024)
        t0 = time.perf_counter()
        read = 0
        for start in scan_starts:
            rows = list(scan(start, END, limit=scan_len, page_size=page,
                             max_total_bytes=max_total))
            if len(rows) != scan_len or rows[0][0] != start:
                raise SystemExit("scan from %r read %d rows" % (start, len(rows)))
            read += len(rows)
        out["scan"] = read / (time.perf_counter() - t0)
        if rows[-1][1] != value:
            raise SystemExit("scan returned a wrong value")
    else:
        out["scan_note"] = "this alopex build's Transaction has no scan_range"
    txn.rollback()

db.flush()
db.close()
print(json.dumps(out))
"""


# Embedded driver for run_rust_hnsw; it runs inside the Rust venv only, with numpy
# installed there (the package takes vectors as NumPy arrays). Vectors come in as .npy
# files: JSON would turn 100k x 384 floats into ~800 MB of text. The API of alopex 0.8.16:
# - Database.create_hnsw_index(name, HnswConfig(dim, m, ef_construction, metric)), metric
#   one of alopex.Metric.COSINE / L2 / INNER_PRODUCT;
# - Transaction.upsert_to_hnsw_batch(name, keys, vectors): keys are bytes (b"%d" % row id
#   here), vectors an (n, dim) float32 array, called per batch of rows inside ONE
#   READ_WRITE txn, committed (durably) at the end. A commit per batch cannot be used: each
#   commit writes the whole index so far to the WAL (~1.8 KB per vector at 384 dims), and
#   the fixed 512 MiB WAL is full after ~24 commits of 1,000 ("invalid format: WAL buffer
#   is full; cannot append entry"; Database.flush() does not free it). The time goes into
#   the graph insertion itself either way (~400 rows/s at 30k rows of 128 dims);
# - Database.search_hnsw(name, query, k, ef_search) -> (list[SearchResult], SearchStats),
#   SearchResult.key being the bytes key and .score the distance.
# The build stops starting batches once it has used max_seconds and commits what it has
# (how many rows it indexed is reported, so recall can be judged against those rows); each
# ef's queries stop after max_seconds too. Results are turned into ids after the timed loop.
HNSW_DRIVER = r"""
import gc
import json
import sys
import time
import traceback

import numpy as np

import alopex

a = json.loads(sys.stdin.read())
vectors = np.load(a["vectors"])
queries = np.load(a["queries"])
n, dim = vectors.shape
MAX, BATCH, CHECK, K = a["max_seconds"], a["batch"], a["check_every"], a["k"]
WARMUP, PASS_SECONDS, MAX_PASSES = a["warmup"], a["pass_seconds"], a["max_passes"]
METRICS = {"cosine": alopex.Metric.COSINE, "l2": alopex.Metric.L2,
           "inner": alopex.Metric.INNER_PRODUCT}
NAME = "docs"
out = {"rows": 0, "build": None, "sweep": {}, "marks": {}, "errors": {}, "notes": []}


def error(err):
    lines = str(err).strip().splitlines() or [""]
    traceback.print_exc()
    return ("%s: %s" % (type(err).__name__, lines[0]))[:300]


db = alopex.Database.open(a["path"])
try:
    config = alopex.HnswConfig(dim, m=a["m"], ef_construction=a["ef_construction"],
                               metric=METRICS[a["metric"]])
    db.create_hnsw_index(NAME, config)
    keys = [b"%d" % i for i in range(n)]
    RW = alopex.TxnMode.READ_WRITE
    gc.collect()
    t0 = time.perf_counter()
    done = 0
    txn = db.begin(RW)
    while done < n and not (done and time.perf_counter() - t0 > a["build_seconds"]):
        txn.upsert_to_hnsw_batch(NAME, keys[done:done + BATCH], vectors[done:done + BATCH])
        done = min(done + BATCH, n)
    txn.commit()
    out["build"] = time.perf_counter() - t0
    out["rows"] = done
    if done < n:
        out["marks"]["build"] = ("%d of %d rows indexed in the --max-seconds budget "
                                 "(%.0f rows/s); recall is against the exact top-%d of "
                                 "those rows, QPS is on that smaller index"
                                 % (done, n, done / out["build"], K))
except Exception as err:
    out["errors"]["build"] = error(err)

search = db.search_hnsw
for ef in a["efs"] if out["rows"] else []:
    try:
        answers, best = [], 0.0
        t_start = time.perf_counter()
        for p in range(MAX_PASSES):
            for q in queries[:WARMUP]:
                search(NAME, q, K, ef)
            got = []
            gc.collect()
            t0 = time.perf_counter()
            for s in range(0, len(queries), CHECK):
                if s and not p and time.perf_counter() - t0 > MAX:
                    break
                for q in queries[s:s + CHECK]:
                    got.append(search(NAME, q, K, ef))
            best = max(best, len(got) / (time.perf_counter() - t0))
            if not p:
                answers = got
            if len(got) < len(queries) or time.perf_counter() - t_start >= PASS_SECONDS:
                break
        out["sweep"][str(ef)] = {
            "qps": best,
            "ids": [[int(r.key) for r in found] for found, _stats in answers],
        }
        if len(answers) < len(queries):
            out["marks"]["ef %d" % ef] = ("%d of %d queries: --max-seconds hit"
                                         % (len(answers), len(queries)))
    except Exception as err:
        out["errors"]["ef %d" % ef] = error(err)
db.close()
print(json.dumps(out))
"""


def _tail(text: str) -> str:
    """Keep error messages readable: pip and tracebacks put the cause last."""
    return text[-_TAIL_CHARS:]


def _dist_name(requirement: str) -> str:
    """Distribution name of a requirement, to check it is installed."""
    return re.split(r"[\s<>=!~\[;@]", requirement.strip(), maxsplit=1)[0]


def _venv_python(root: Path) -> Path:
    """Interpreter of a venv on POSIX (the only platform we bench on)."""
    return root / "bin" / "python"


def _venv_works(python: Path, packages: Sequence[str]) -> bool:
    """Cheap probe so an existing venv is reused instead of rebuilt."""
    if not python.exists():
        return False
    probe = (
        "import sys, importlib.metadata as m\n"
        "import alopex._alopex\n"
        f"assert m.version({RUST_PACKAGE!r}) == {RUST_VERSION!r}\n"
        "for d in sys.argv[1:]:\n"
        "    m.version(d)\n"
    )
    names = [_dist_name(p) for p in packages]
    try:
        res = subprocess.run(
            [str(python), "-I", "-c", probe, *names],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0


def ensure_rust_venv(root: Path | None = None, *, packages: Sequence[str] = ()) -> Path:
    """Create (once) the venv holding the Rust ``alopex`` and return its python.

    It is separate because its import name clashes with ours; the caller's
    interpreter and environment are never modified. ``packages`` are extra
    requirements for drivers that need them (e.g. ``numpy`` for HNSW, whose
    vector arguments must be numpy arrays).
    """
    if root is None:
        root = Path(__file__).resolve().parent / ".venv-rust"
    root = Path(root)
    python = _venv_python(root)
    if _venv_works(python, packages):
        return python

    if not python.exists():
        base = shutil.which("python3") or sys.executable
        made = subprocess.run(
            [base, "-m", "venv", "--clear", str(root)],
            capture_output=True,
            text=True,
            check=False,
        )
        if made.returncode != 0:
            raise RuntimeError(
                f"python3 -m venv {root} failed:\n{_tail(made.stdout + made.stderr)}"
            )

    pip = [str(python), "-I", "-m", "pip", "--disable-pip-version-check"]
    # A failed pip upgrade is harmless: the bundled pip can still install.
    subprocess.run(
        [*pip, "install", "-q", "--upgrade", "pip"],
        capture_output=True,
        text=True,
        check=False,
    )
    install = subprocess.run(
        [*pip, "install", f"{RUST_PACKAGE}=={RUST_VERSION}", *packages],
        capture_output=True,
        text=True,
        check=False,
    )
    if install.returncode != 0:
        raise RuntimeError(
            f"pip install {RUST_PACKAGE}=={RUST_VERSION} failed:\n"
            f"{_tail(install.stdout + install.stderr)}"
        )
    if not _venv_works(python, packages):
        raise RuntimeError(
            f"{root} still cannot import {RUST_PACKAGE} {RUST_VERSION} after install:\n"
            f"{_tail(install.stdout + install.stderr)}"
        )
    return python


def run_rust_driver(
    code: str,
    args: dict[str, Any],
    timeout: float = DEFAULT_TIMEOUT,
    *,
    packages: Sequence[str] = (),
) -> dict[str, Any]:
    """Run ``code`` in the Rust venv with ``args`` as JSON on stdin.

    Shared by the KV, SQL and vector peers so each only writes its workload.
    The driver must print a JSON object as its last stdout line; a non-zero
    exit, a timeout or unparsable output raises with the output's tail.
    """
    python = ensure_rust_venv(packages=packages)
    try:
        res = subprocess.run(
            [str(python), "-I", "-c", code],
            input=json.dumps(args),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"Rust driver timed out after {timeout:g}s") from exc
    output = _tail(res.stdout + res.stderr)
    if res.returncode != 0:
        raise RuntimeError(f"Rust driver exited with {res.returncode}:\n{output}")
    lines = [line for line in res.stdout.splitlines() if line.strip()]
    try:
        result = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError) as exc:
        raise RuntimeError(f"Rust driver printed no JSON last line:\n{output}") from exc
    if not isinstance(result, dict):
        raise TypeError(f"Rust driver printed {type(result).__name__}, not an object")
    return result


def run_rust_kv(
    n_keys: int,
    batch_size: int,
    n_gets: int,
    n_scans: int,
    scan_len: int,
    seed: int,
    workdir: Path,
) -> dict[str, float]:
    """Run the KV workload on the Rust peer; return ops/second per phase.

    Keys are ``b"key%013d" % i``; every value is the same 100 bytes,
    ``random.Random(seed).randbytes(100)``. ``put`` (keys/s) inserts all keys
    in ``random.Random(seed).shuffle`` order, ``batch_size`` per committed
    READ_WRITE txn. ``get`` (gets/s) reads ``n_gets`` keys drawn with
    ``random.Random(seed + 1).randrange(n_keys)``; ``scan`` (keys/s) then reads
    ``n_scans`` runs of ``scan_len`` keys from starts drawn from that same
    generator in ``range(n_keys - scan_len + 1)``. Our side must mirror this
    for a fair comparison. The database is created fresh at
    ``workdir / "rust-kv"`` and left there for the caller to remove.
    """
    if n_keys < 1 or batch_size < 1 or n_gets < 0 or n_scans < 0:
        raise ValueError("n_keys and batch_size must be >= 1; counts must be >= 0")
    if n_scans and not 1 <= scan_len <= n_keys:
        raise ValueError("scan_len must be in 1..n_keys")
    db_path = Path(workdir).resolve() / "rust-kv"
    if db_path.exists():
        shutil.rmtree(db_path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    args = {
        "path": str(db_path),
        "n_keys": n_keys,
        "batch_size": batch_size,
        "n_gets": n_gets,
        "n_scans": n_scans,
        "scan_len": scan_len,
        "seed": seed,
    }
    return run_rust_driver(KV_DRIVER, args, timeout=DEFAULT_TIMEOUT)


def run_rust_hnsw(
    vectors: Path,
    queries: Path,
    *,
    metric: str,
    m: int,
    ef_construction: int,
    efs: Sequence[int],
    k: int,
    max_seconds: float,
    workdir: Path,
    build_seconds: float | None = None,
    batch: int = 1000,
    check_every: int = 20,
    warmup: int = 5,
    pass_seconds: float = 1.0,
    max_passes: int = 5,
) -> dict[str, Any]:
    """Build an HNSW index of the rows in ``vectors`` (a .npy file, row ``i`` keyed
    ``b"%d" % i``, inserted in row order) and time single queries from ``queries`` at each
    ``ef`` in ``efs`` by vector.py's rule for one system: the best of up to ``max_passes``
    passes over the queries, each after ``warmup`` untimed queries, while the passes so far
    took under ``pass_seconds``).

    Returns ``rows`` (how many rows the build managed in ``build_seconds``, default
    ``max_seconds``: a prefix of the file), ``build`` seconds, ``sweep`` (str(ef) ->
    ``qps`` and the row ids found per query), and ``marks``/``errors``/``notes`` as in
    the other drivers. The database is created fresh at ``workdir / "rust-hnsw"`` and
    left there for the caller to remove.
    """
    if metric not in ("cosine", "l2", "inner"):
        raise ValueError(f"metric must be cosine, l2 or inner, not {metric!r}")
    db_path = Path(workdir).resolve() / "rust-hnsw"
    if db_path.exists():
        shutil.rmtree(db_path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    args = {
        "path": str(db_path),
        "vectors": str(Path(vectors).resolve()),
        "queries": str(Path(queries).resolve()),
        "metric": metric,
        "m": m,
        "ef_construction": ef_construction,
        "efs": list(efs),
        "k": k,
        "max_seconds": max_seconds,
        "build_seconds": max_seconds if build_seconds is None else build_seconds,
        "batch": batch,
        "check_every": check_every,
        "warmup": warmup,
        "pass_seconds": pass_seconds,
        "max_passes": max_passes,
    }
    # The driver's soft guards bound every phase; this only catches a hung native call.
    timeout = 3 * max_seconds * len(efs) + 2 * (build_seconds or max_seconds) + 300
    return run_rust_driver(HNSW_DRIVER, args, timeout=timeout, packages=("numpy",))


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory(prefix="rust-peer-") as tmp:
        figures = run_rust_kv(
            n_keys=100_000,
            batch_size=1000,
            n_gets=20_000,
            n_scans=200,
            scan_len=100,
            seed=42,
            workdir=Path(tmp),
        )
    print(json.dumps(figures, indent=2, sort_keys=True))
