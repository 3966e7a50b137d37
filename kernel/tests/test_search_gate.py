"""SearchGate: searches side by side, exclusive steps alone, on real threads."""

from __future__ import annotations

import threading
import time

from alopex.contracts.index import SearchGate
from alopex.testing.index import run_threads


def test_an_exclusive_step_waits_for_a_running_search() -> None:
    gate = SearchGate()
    order: list[str] = []
    gate.enter()
    writer = threading.Thread(target=lambda: _exclusively(gate, order))
    writer.start()
    time.sleep(0.05)  # the writer is waiting, not running
    order.append("search ends")
    gate.leave()
    writer.join(5)
    assert order == ["search ends", "exclusive"]


def test_a_search_waits_for_a_running_exclusive_step() -> None:
    gate = SearchGate()
    order: list[str] = []
    inside, release = threading.Event(), threading.Event()

    def writer() -> None:
        with gate.exclusive():
            inside.set()
            release.wait(5)
            order.append("exclusive ends")

    def search() -> None:
        gate.enter()
        order.append("search")
        gate.leave()

    threads = [threading.Thread(target=writer), threading.Thread(target=search)]
    threads[0].start()
    inside.wait(5)
    threads[1].start()
    time.sleep(0.05)
    release.set()
    for thread in threads:
        thread.join(5)
    assert order == ["exclusive ends", "search"]


def test_a_search_at_another_setting_changes_it_alone() -> None:
    changes: list[int] = []
    gate = SearchGate(changes.append, setting=10)
    gate.enter(10)
    gate.leave()
    gate.enter(20)
    assert gate.setting == 20 and changes == [20]
    gate.leave()
    with gate.exclusive():  # the owner of an exclusive step may search inside it
        gate.enter(30)
        gate.leave()
    assert changes == [20, 30]


def test_searches_and_exclusive_steps_never_overlap() -> None:
    """Four searching threads and two writers; each side records what runs, and a
    writer must always find itself alone (and the searches at its setting)."""
    gate = SearchGate(setting=0)
    running = {"searches": 0, "exclusive": 0}
    count = threading.Lock()
    failures: list[str] = []

    def searcher(setting: int) -> None:
        for _ in range(2_000):
            gate.enter(setting)
            try:
                with count:
                    running["searches"] += 1
                    if running["exclusive"] or gate.setting != setting:
                        failures.append("a search overlapped an exclusive step")
                time.sleep(0)  # let the others in
                with count:
                    running["searches"] -= 1
            finally:
                gate.leave()

    def writer() -> None:
        for _ in range(300):
            with gate.exclusive():
                with count:
                    if running["searches"] or running["exclusive"]:
                        failures.append("an exclusive step was not alone")
                    running["exclusive"] += 1
                time.sleep(0)
                with count:
                    running["exclusive"] -= 1

    run_threads(
        [lambda: searcher(0), lambda: searcher(0), lambda: searcher(1), writer, writer],
        timeout=60,
    )
    assert not failures, failures[:3]


def _exclusively(gate: SearchGate, order: list[str]) -> None:
    with gate.exclusive():
        order.append("exclusive")
