"""What a test can see of :mod:`alopex.hugepages`: whether the system honours the
advice, and which memory carries it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path


def huge_pages_on() -> bool:
    """Linux with transparent huge pages in ``always`` or ``madvise`` mode."""
    try:
        mode = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False
    return sys.platform == "linux" and "[never]" not in mode


def _mappings() -> Iterator[tuple[int, int, bool, bool]]:
    """(start, end, anonymous, advised for huge pages) of each of this process's
    mappings, from /proc/self/smaps (its ``hg`` VmFlag)."""
    low = high = 0
    anonymous = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split(maxsplit=1)[0]
        if "-" in head and not head.endswith(":"):
            low, high = (int(part, 16) for part in head.split("-"))
            anonymous = len(line.split(maxsplit=5)) == 5
        elif head == "VmFlags:":
            yield low, high, anonymous, "hg" in line.split()


def advised(address: int) -> bool:
    """Whether the mapping holding ``address`` is advised for huge pages."""
    return any(low <= address < high and hg for low, high, _, hg in _mappings())


def advised_holding(needle: bytes) -> bool | None:
    """Whether an anonymous mapping whose bytes hold ``needle`` (say, a node a library
    allocated out of sight) is advised for huge pages: True if one is, False if some hold
    it but none is (freed buffers may keep stale copies), None if none holds it."""
    found: bool | None = None
    with open("/proc/self/mem", "rb", buffering=0) as memory:
        for low, high, anonymous, hg in _mappings():
            if not anonymous or high - low < len(needle):
                continue
            memory.seek(low)
            try:
                if needle in memory.read(high - low):
                    if hg:
                        return True
                    found = False
            except OSError:  # not readable (a guard page)
                continue
    return found
