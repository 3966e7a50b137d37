"""The SIGKILL crash test: a child commits batches, the parent kills it at random moments
and checks that the store holds exactly a prefix of the batches, including every batch
whose durable commit returned.

Batch ``i`` writes ``n(i)`` keys ``crash/<i>/<j>`` and sets ``crash/next`` to ``i + 1``;
the child resumes from ``crash/next`` after each restart.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

NEXT = b"crash/next"


def batch_size(i: int) -> int:
    return 1 + (i * 37) % 97


def batch_value(i: int, j: int) -> bytes:
    # Every 16th batch carries 64 KiB values so some commits span many pages.
    size = 65536 if i % 16 == 5 else 40
    return (b"%d:%d:" % (i, j)).ljust(size, b"x")


def child(path: str, engine: str, sync: str) -> None:
    """Commit batches forever, printing each batch number once its commit returned."""
    import alopex

    db = alopex.connect(path, config={"storage": {"engine": engine, "sync": sync}})
    raw = db.get(NEXT)
    i = int(raw) if raw else 0
    print("ready", flush=True)
    while True:
        with db.transaction() as tx:
            for j in range(batch_size(i)):
                tx.put(b"crash/%08d/%03d" % (i, j), batch_value(i, j))
            tx.put(NEXT, b"%d" % (i + 1))
        print(i, flush=True)
        i += 1


def verify(path: Path, engine: str, acked: int, acked_durable: bool) -> int:
    """Check the prefix property; return how many batches the store holds."""
    import alopex

    with alopex.connect(path, config={"storage": {"engine": engine}}) as db:
        raw = db.get(NEXT)
        held = int(raw) if raw else 0
        seen: dict[int, int] = {}
        for key, value in db.scan(prefix=b"crash/0"):
            _, i_text, j_text = key.split(b"/")
            i, j = int(i_text), int(j_text)
            assert value == batch_value(i, j), f"batch {i} key {j} holds a wrong value"
            seen[i] = seen.get(i, 0) + 1
    assert sorted(seen) == list(range(held)), (
        f"store is not a prefix: next={held}, batches present={sorted(seen)[:10]}..."
    )
    for i, count in seen.items():
        assert count == batch_size(i), f"batch {i} is torn: {count}/{batch_size(i)} keys"
    if acked_durable:
        assert held >= acked + 1, f"batch {acked} was acknowledged but is missing"
    return held


def run_crash_rounds(
    engine: str,
    path: Path,
    *,
    sync: str,
    rounds: int,
    acked_durable: bool = True,
    seed: int | None = None,
) -> None:
    """Kill a committing child ``rounds`` times; verify after each kill."""
    rng = random.Random(seed)
    acked = -1
    held = 0
    for round_no in range(rounds):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from alopex.testing.crash import child; child(*sys.argv[1:])",
                str(path),
                engine,
                sync,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        # Kill at a random moment: sometimes during start-up, mostly while committing.
        if rng.random() < 0.8:
            line = proc.stdout.readline()
            assert line == b"ready\n", f"child failed to start: {line!r} {proc.stderr.read()!r}"
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        assert proc.returncode == -signal.SIGKILL, f"child exited early: {err.decode()[-2000:]}"
        numbers = [int(n) for n in out.split() if n.isdigit()]
        if numbers:
            acked = max(acked, numbers[-1])
        previous = held
        held = verify(path, engine, acked, acked_durable)
        if acked_durable:
            assert held >= previous, f"round {round_no}: store lost batches ({previous}->{held})"
    # A run that never committed would prove nothing.
    assert acked >= rounds, f"only {acked + 1} batches were committed in {rounds} rounds"
