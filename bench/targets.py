"""How a benchmark ratio is judged against an issue's target, shared by every bench."""

from __future__ import annotations


def verdict(ratio: float, target: float | None, strict: bool) -> str:
    """ "meets" or "MISSES" (empty without a target); ``strict``: it must be exceeded."""
    if target is None:
        return ""
    ok = ratio > target if strict else ratio >= target
    return "meets" if ok else "MISSES"


def target_text(target: float | None, strict: bool) -> str:
    if target is None:
        return ""
    return f"{'>' if strict else '>='} {target:g}"
