"""Window functions: ranking, offsets, values and aggregates OVER partitions and frames.

Rows are sorted once by (partition, order keys); each function is then computed with NumPy
over the sorted arrays -- prefix sums for sliding sums and counts, accumulate for running
minima and maxima -- and scattered back to the original row order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from alopex.errors import NotSupportedError, ProgrammingError
from alopex.sql import kernels as k
from alopex.sql.kernels import Value

if TYPE_CHECKING:
    from alopex.sql.expressions import Evaluator


def named_windows(select: exp.Select) -> dict[str, exp.Window]:
    return {w.name.lower(): w for w in select.args.get("windows") or []}


def resolve(window: exp.Window, named: dict[str, exp.Window]) -> exp.Window:
    """Fill in ``OVER w`` / ``OVER (w ...)`` from the WINDOW clause."""
    alias = window.args.get("alias")
    if alias is None:
        return window
    base = named.get(alias.name.lower())
    if base is None:
        raise ProgrammingError(f"no such window: {alias.name}")
    merged = window.copy()
    for arg in ("partition_by", "order", "spec"):
        if not merged.args.get(arg) and base.args.get(arg):
            merged.set(
                arg,
                base.args[arg].copy()
                if hasattr(base.args[arg], "copy")
                else [e.copy() for e in base.args[arg]],
            )
    merged.set("alias", None)
    return merged


def compute(window: exp.Window, ev: Evaluator) -> pa.Array:
    """One window expression as a column aligned with ``ev.relation``."""
    from alopex.sql.select import _group_ids, _sort_indices

    rows = ev.rows
    if rows == 0:
        return pa.nulls(0)
    partition = [ev.column(p) for p in window.args.get("partition_by") or []]
    gid = _group_ids(partition)[0] if partition else np.zeros(rows, np.int64)
    order = window.args.get("order")
    ordered = list(order.expressions) if order is not None else []
    keys: list[tuple[Value, bool, bool]] = [(pa.array(gid), False, False)]
    order_columns = []
    for item in ordered:
        desc = bool(item.args.get("desc"))
        nulls_first = item.args.get("nulls_first")
        nulls_first = (not desc) if nulls_first is None else bool(nulls_first)
        column = ev.column(item.this)
        order_columns.append(column)
        keys.append((column, desc, nulls_first))
    perm = np.asarray(_sort_indices(keys, rows).to_numpy(), dtype=np.int64)
    sorted_gid = gid[perm]
    starts = np.r_[True, sorted_gid[1:] != sorted_gid[:-1]]
    part_start = np.maximum.accumulate(np.where(starts, np.arange(rows), 0))
    ends = np.r_[sorted_gid[1:] != sorted_gid[:-1], True]
    part_end = np.minimum.accumulate(np.where(ends, np.arange(rows), rows)[::-1])[::-1]
    # peers: rows with equal order keys inside one partition
    if order_columns:
        peer_codes = _group_ids([pa.array(gid), *order_columns])[0][perm]
        new_peer = np.r_[True, peer_codes[1:] != peer_codes[:-1]]
    else:
        new_peer = starts.copy()
    peer_start = np.maximum.accumulate(np.where(new_peer, np.arange(rows), 0))
    peer_last = np.r_[new_peer[1:], True]
    peer_end = np.minimum.accumulate(np.where(peer_last, np.arange(rows), rows)[::-1])[::-1]
    context = _Sorted(
        rows, perm, part_start, part_end, peer_start, peer_end, new_peer, bool(order_columns)
    )
    result = _function(window, ev, context)
    out = pa.array(result) if not isinstance(result, pa.Array) else result
    inverse = np.empty(rows, dtype=np.int64)
    inverse[perm] = np.arange(rows)
    return out.take(pa.array(inverse))


class _Sorted:
    def __init__(
        self,
        rows: int,
        perm: np.ndarray,
        part_start: np.ndarray,
        part_end: np.ndarray,
        peer_start: np.ndarray,
        peer_end: np.ndarray,
        new_peer: np.ndarray,
        has_order: bool,
    ) -> None:
        self.rows = rows
        self.perm = perm
        self.part_start = part_start
        self.part_end = part_end
        self.peer_start = peer_start
        self.peer_end = peer_end
        self.new_peer = new_peer
        self.has_order = has_order
        self.index = np.arange(rows)


def _function(window: exp.Window, ev: Evaluator, s: _Sorted) -> Any:
    func = window.this
    name = func.name.lower() if isinstance(func, exp.Anonymous) else func.key
    if name == "rownumber":
        return s.index - s.part_start + 1
    if name == "rank":
        return s.peer_start - s.part_start + 1
    if name == "denserank":
        bumps = np.cumsum(s.new_peer)
        return bumps - bumps[s.part_start] + 1
    if name in ("percentrank", "cumedist", "ntile"):
        size = s.part_end - s.part_start + 1
        if name == "percentrank":
            return np.where(size > 1, (s.peer_start - s.part_start) / np.maximum(size - 1, 1), 0.0)
        if name == "cumedist":
            return (s.peer_end - s.part_start + 1) / size
        buckets = int(ev.eval(func.this).as_py())
        position = s.index - s.part_start
        return (position * buckets // size) + 1
    if name in ("lag", "lead"):
        values = _sorted_values(ev.column(func.this), s)
        offset_node = func.args.get("offset")
        offset = int(ev.eval(offset_node).as_py()) if offset_node is not None else 1
        default_node = func.args.get("default")
        default = ev.eval(default_node) if default_node is not None else k.NULL
        target = s.index - offset if name == "lag" else s.index + offset
        inside = (target >= s.part_start) & (target <= s.part_end)
        taken = values.take(pa.array(np.where(inside, target, 0)))
        default, taken = k.unify([default, taken])
        return pc.if_else(pa.array(inside), taken, default)
    if name in ("firstvalue", "lastvalue", "nthvalue"):
        values = _sorted_values(ev.column(func.this), s)
        low, high = _frame(window, s)
        if name == "firstvalue":
            pick = low
        elif name == "lastvalue":
            pick = high
        else:
            nth = int(ev.eval(func.args["offset"]).as_py())
            pick = low + nth - 1
        valid = (pick >= low) & (pick <= high) & (high >= low)
        taken = values.take(pa.array(np.clip(pick, 0, s.rows - 1)))
        return pc.if_else(pa.array(valid), taken, pa.scalar(None, taken.type))
    if name in ("sum", "avg", "count", "min", "max", "total"):
        return _aggregate(name, func, window, ev, s)
    raise NotSupportedError(f"window function {name}() is not supported")


def _sorted_values(column: pa.Array, s: _Sorted) -> pa.Array:
    return column.take(pa.array(s.perm))


def _frame(window: exp.Window, s: _Sorted) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive [low, high] sorted positions of each row's frame."""
    spec = window.args.get("spec")
    if spec is None:
        if s.has_order:  # RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW (with peers)
            return s.part_start, s.peer_end
        return s.part_start, s.part_end
    kind = (spec.args.get("kind") or "ROWS").upper()
    low = _bound(spec.args.get("start"), spec.args.get("start_side"), s, kind, True)
    high = _bound(spec.args.get("end") or "CURRENT ROW", spec.args.get("end_side"), s, kind, False)
    return np.maximum(low, s.part_start), np.minimum(high, s.part_end)


def _bound(value: Any, side: Any, s: _Sorted, kind: str, is_start: bool) -> np.ndarray:
    text = value.upper() if isinstance(value, str) else None
    side_text = (side or "").upper() if isinstance(side, str) else ""
    if text == "UNBOUNDED":
        return s.part_start if side_text == "PRECEDING" else s.part_end
    if text == "CURRENT ROW":
        if kind == "RANGE":
            return s.peer_start if is_start else s.peer_end
        return s.index
    if isinstance(value, exp.Literal):
        if kind != "ROWS":
            raise NotSupportedError("RANGE frames with offsets are not supported; use ROWS")
        offset = int(value.this)
        return s.index - offset if side_text == "PRECEDING" else s.index + offset
    raise NotSupportedError(f"unsupported window frame bound: {value}")


def _aggregate(name: str, func: exp.Expr, window: exp.Window, ev: Evaluator, s: _Sorted) -> Any:
    argument = (
        func.this
        if not isinstance(func, exp.Anonymous)
        else (func.expressions[0] if func.expressions else None)
    )
    if isinstance(argument, exp.Distinct):
        raise NotSupportedError("DISTINCT aggregates over windows are not supported")
    low, high = _frame(window, s)
    empty = high < low
    if name == "count" and (argument is None or isinstance(argument, exp.Star)):
        return np.where(empty, 0, high - low + 1)
    if argument is None:
        raise ProgrammingError(f"{name}() needs an argument")
    column = _sorted_values(
        k.numeric(ev.column(argument)) if name not in {"min", "max"} else ev.column(argument),
        s,
    )
    valid = np.asarray(pc.is_valid(column).to_numpy(zero_copy_only=False), dtype=bool)
    counts = np.r_[0, np.cumsum(valid)]
    present = np.where(empty, 0, counts[np.maximum(high + 1, 0)] - counts[low])
    if name == "count":
        return present
    if name in ("sum", "avg", "total"):
        integer = pa.types.is_integer(column.type)
        data = np.asarray(
            column.fill_null(0).to_numpy(zero_copy_only=False),
            dtype=np.int64 if integer else np.float64,
        )
        sums = np.r_[0, np.cumsum(data)]
        total = np.where(empty, 0, sums[np.maximum(high + 1, 0)] - sums[low])
        if name == "avg":
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = total / np.maximum(present, 1)
            return pa.array(mean, mask=present == 0)
        if name == "total":
            return pa.array(total.astype(np.float64))
        return pa.array(total, mask=present == 0)
    return _min_max(name, column, low, high, s)


def _min_max(
    name: str, column: pa.Array, low: np.ndarray, high: np.ndarray, s: _Sorted
) -> pa.Array:
    """Frame minima and maxima, one partition segment at a time."""
    values = column.to_pylist()
    out: list[Any] = [None] * s.rows
    pick = min if name == "min" else max
    # frames are contiguous and monotone within a partition: reuse work per distinct frame
    cache: dict[tuple[int, int], Any] = {}
    for row in range(s.rows):
        lo, hi = int(low[row]), int(high[row])
        if hi < lo:
            continue
        found = cache.get((lo, hi))
        if found is None and (lo, hi) not in cache:
            present: Sequence[Any] = [v for v in values[lo : hi + 1] if v is not None]
            found = pick(present) if present else None
            cache[(lo, hi)] = found
        out[row] = found
    return pa.array(out, column.type)
