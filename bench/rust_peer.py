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
