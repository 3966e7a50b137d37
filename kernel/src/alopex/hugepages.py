"""Transparent huge pages for vector index providers' graph memory.

A graph walk reads a few hundred nodes at random from tens of MiB. On 4 KiB pages nearly
every such read also misses the TLB, and in a virtual machine a TLB miss walks two page
tables; the misses also push out the TLB entries of the Python code that runs after the
walk. Linux backs memory with 2 MiB pages where a process asks (``madvise``) when
transparent huge pages are in ``madvise`` mode, the common default. NumPy asks for its
own large arrays; the C++ libraries behind the providers do not, so the providers ask:

- :func:`advise` when they can see where the memory is (faiss exposes its vectors);
- :func:`advise_new_mappings` around a call that allocates it out of sight (hnswlib's
  ``init_index``, ``resize_index``, ``load_index``): the anonymous mappings that appear
  or change during the call and are at least as large as the memory expected are
  advised, read from ``/proc/self/maps`` before and after. Only for 32 MiB or more,
  which glibc's malloc maps afresh unless a library raised its mmap threshold (then the
  block may come from the heap, shows no new mapping and stays on small pages); a
  smaller graph mostly fits the CPU's caches anyway.

Advice never changes what memory holds. Where there is no such thing (not Linux, huge
pages turned off, a kernel before 6.1 for the collapse of pages already in use) the
calls fail quietly and nothing else happens.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

PAGE = 2 << 20
SMALL_PAGE = mmap.PAGESIZE
#: glibc's malloc maps a block this large or larger afresh (below it, its threshold moves
#: and a block may reuse memory already mapped, where no new mapping shows it)
MMAP_THRESHOLD_MAX = 32 << 20
MADV_HUGEPAGE = 14
MADV_COLLAPSE = 25


def _load_madvise() -> Callable[[int, int, int], int] | None:
    if sys.platform != "linux":  # the advice numbers above are Linux's
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        madvise = libc.madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    return madvise


_madvise = _load_madvise()


def advise(address: int, size: int) -> None:
    """Ask for huge pages over the memory pages of ``[address, address + size)``, then
    collapse the whole 2 MiB pages within it that are already in use. The advice covers
    the partial ends too, so a mapping advised end to end stays one mapping (the kernel
    splits one advised in part) and keeps the flag wherever it grows."""
    start = address // SMALL_PAGE * SMALL_PAGE
    end = -(-(address + size) // SMALL_PAGE) * SMALL_PAGE
    if _madvise is None or end <= start or _madvise(start, end - start, MADV_HUGEPAGE):
        return
    whole_start = -(-address // PAGE) * PAGE
    whole_end = (address + size) // PAGE * PAGE
    if whole_end > whole_start:  # best effort: where it fails, khugepaged gets there later
        _madvise(whole_start, whole_end - whole_start, MADV_COLLAPSE)


def _anonymous_mappings() -> set[tuple[int, int]]:
    """(start, end) of this process's anonymous mappings (those naming no file)."""
    try:
        with open("/proc/self/maps", encoding="ascii") as maps:
            lines = maps.read().splitlines()
    except OSError:
        return set()
    found = set()
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) == 5:
            low, high = fields[0].split("-")
            found.add((int(low, 16), int(high, 16)))
    return found


@contextmanager
def advise_new_mappings(at_least: int) -> Iterator[None]:
    """Advise huge pages over the anonymous mappings of ``at_least`` bytes or more that
    appear or change while the block runs (memory a library allocates out of sight).
    Below MMAP_THRESHOLD_MAX it does nothing: such memory need not show as a mapping."""
    watch = _madvise is not None and at_least >= MMAP_THRESHOLD_MAX
    before = _anonymous_mappings() if watch else None
    yield
    if before is None:
        return
    for low, high in _anonymous_mappings() - before:
        if high - low >= at_least:
            advise(low, high - low)
