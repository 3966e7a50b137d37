"""Vector functions, computed with NumPy over whole columns.

A VECTOR(n) column is an Arrow ``fixed_size_list<float32>[n]``, so a column of a million
vectors is one contiguous float32 buffer that NumPy reads without copying. The other
argument may be a literal (``'[0.1, 0.2]'`` or ``[0.1, 0.2]``), a parameter (list, NumPy
array) or another vector column.

Metrics: ``cosine`` similarity is cos(a, b) and its distance 1 - cos; ``l2`` distance is the
Euclidean distance and its similarity the negated distance; ``inner`` similarity is the dot
product and its distance the negated dot product. Larger similarity, smaller distance:
closer. ``vector_similarity(a, b)`` without a metric uses the VECTOR column's declared
metric (``VECTOR(384, L2)``), cosine when none is declared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from sqlglot import exp

from alopex.errors import DataError, ProgrammingError
from alopex.sql import kernels as k
from alopex.sql.functions import Impl, _args, function
from alopex.sql.kernels import NULL, Value
from alopex.sql.types import parse_vector_text

if TYPE_CHECKING:
    from alopex.sql.expressions import Evaluator

METRICS = ("cosine", "l2", "inner")
Matrix = npt.NDArray[np.float32]


def vectors(value: Value, what: str) -> tuple[Matrix, npt.NDArray[np.bool_] | None]:
    """``value`` as float32 rows (one row for a scalar) and a mask of NULL rows (or None)."""
    if isinstance(value, pa.ChunkedArray):
        value = value.combine_chunks()
    if isinstance(value, pa.Scalar):
        return _scalar_vector(value, what), None
    kind = value.type
    if pa.types.is_null(kind):
        return np.zeros((len(value), 0), np.float32), np.ones(len(value), bool)
    if pa.types.is_fixed_size_list(kind):
        dim = kind.list_size
        flat = value.values.slice(value.offset * dim, len(value) * dim)  # null slots included
        matrix = flat.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        matrix = matrix.reshape(len(value), dim)
        nulls = value.is_null().to_numpy(zero_copy_only=False) if value.null_count else None
        return matrix, nulls
    if pa.types.is_string(kind) or pa.types.is_list(kind):
        rows = [_scalar_vector(value[n], what) for n in range(len(value))]  # text literals
        dims = {r.shape[0] for r in rows if r.size}
        if len(dims) > 1:
            raise DataError(f"{what}: vectors of different dimensions {sorted(dims)}")
        nulls = value.is_null().to_numpy(zero_copy_only=False)
        dim = dims.pop() if dims else 0
        matrix = np.stack([r if r.size else np.zeros(dim, np.float32) for r in rows])
        return matrix.reshape(len(value), dim), nulls
    raise DataError(f"{what} is a {kind}, not a vector")


def _scalar_vector(value: pa.Scalar, what: str) -> Matrix:
    if not value.is_valid:
        return np.zeros(0, np.float32)
    python = value.as_py()
    if isinstance(python, str):
        return parse_vector_text(python, what)
    if isinstance(python, (bytes, bytearray)):
        return np.frombuffer(python, np.float32)
    if isinstance(python, list):
        array = np.asarray(python, np.float32)
        if array.ndim != 1 or not np.isfinite(array).all():
            raise DataError(f"{what}: a vector is a flat list of finite numbers")
        return array
    raise DataError(f"{what}: {python!r} is not a vector")


def _pair(
    ev: Evaluator, node: exp.Func
) -> tuple[Matrix, Matrix, npt.NDArray[np.bool_] | None, bool]:
    """Both vector arguments with matching dimensions, the NULL rows, and whether the
    result is a single value (both arguments scalar)."""
    args = _args(node)
    name = node.name.lower()
    if len(args) < 2:
        raise ProgrammingError(f"{name}() takes two vectors")
    left_value, right_value = ev.eval(args[0]), ev.eval(args[1])
    single = isinstance(left_value, pa.Scalar) and isinstance(right_value, pa.Scalar)
    if k.is_null_type(left_value) or k.is_null_type(right_value):
        return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32), None, single
    left, left_nulls = vectors(left_value, f"{name}() argument 1")
    right, right_nulls = vectors(right_value, f"{name}() argument 2")
    if left.shape[-1] != right.shape[-1] and left.size and right.size:
        raise DataError(
            f"{name}(): vectors of {left.shape[-1]} and {right.shape[-1]} dimensions "
            f"cannot be compared ({args[0].sql()} vs {args[1].sql()})"
        )
    nulls = left_nulls if right_nulls is None else right_nulls
    if left_nulls is not None and right_nulls is not None:
        nulls = left_nulls | right_nulls
    return left, right, nulls, single


def _result(
    values: npt.NDArray[np.float64], nulls: npt.NDArray[np.bool_] | None, single: bool
) -> Value:
    if single:
        return NULL if values.size == 0 else pa.scalar(float(values.reshape(-1)[0]))
    return pa.array(values.reshape(-1), pa.float64(), mask=nulls)


def _dot(left: Matrix, right: Matrix) -> npt.NDArray[np.float64]:
    if left.ndim == 1 and right.ndim == 1:
        return np.asarray([float(left @ right)])
    if left.ndim == 1:
        left, right = right, left
    if right.ndim == 1:
        return (left @ right).astype(np.float64)
    return np.asarray(np.einsum("ij,ij->i", left, right, dtype=np.float64))


def _norms(matrix: Matrix) -> npt.NDArray[np.float64]:
    # summed in float32, as BLAS sums the dot products they divide: 4x faster than
    # float64, and a relative error (~1e-7) no larger than theirs
    with np.errstate(over="ignore"):
        squares = np.einsum("...i,...i->...", matrix, matrix).astype(np.float64)
    if not np.isfinite(squares).all():  # coordinates past ~1e19 overflow float32
        squares = np.einsum("...i,...i->...", matrix, matrix, dtype=np.float64)
    return np.asarray(np.sqrt(squares))


def similarity(left: Matrix, right: Matrix, metric: str) -> npt.NDArray[np.float64]:
    if metric == "inner":
        return _dot(left, right)
    if metric == "l2":
        return 0.0 - distance(left, right, "l2")  # 0.0 - x: no -0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        cosine = _dot(left, right) / (np.atleast_1d(_norms(left)) * np.atleast_1d(_norms(right)))
    return np.nan_to_num(cosine, nan=0.0)  # a zero vector is similar to nothing


def distance(left: Matrix, right: Matrix, metric: str) -> npt.NDArray[np.float64]:
    if metric == "l2":
        difference = left.astype(np.float64) - right
        return np.atleast_1d(np.sqrt(np.einsum("...i,...i->...", difference, difference)))
    return 1.0 - similarity(left, right, "cosine") if metric == "cosine" else -_dot(left, right)


def _metric(ev: Evaluator, node: exp.Func) -> str:
    """The explicit third argument, else the metric a VECTOR column argument declares."""
    args = _args(node)
    if len(args) > 2:
        value = ev.eval(args[2])
        metric = str(value.as_py()).lower() if isinstance(value, pa.Scalar) else ""
        if metric not in METRICS:
            raise ProgrammingError(
                f"{node.name}(): unknown metric {args[2].sql()}; use 'cosine', 'l2' or 'inner'"
            )
        return metric
    for arg in args[:2]:
        declared = _declared_metric(ev, arg)
        if declared:
            return declared
    return "cosine"


def _declared_metric(ev: Evaluator, node: exp.Expr) -> str | None:
    if not isinstance(node, exp.Column):
        return None
    catalog = ev.executor.catalog
    qualifier = node.table.lower()
    found = {
        c.type.metric
        for t in catalog.tables.values()
        if not qualifier or qualifier == t.name.lower() or qualifier not in catalog.tables
        for c in t.columns
        if c.name.lower() == node.name.lower() and c.type.dim is not None
    }
    return found.pop() if len(found) == 1 else None


@function("vector_similarity")
def _vector_similarity(ev: Evaluator, node: exp.Func) -> Value:
    left, right, nulls, single = _pair(ev, node)
    if left.size == 0 or right.size == 0:
        return NULL
    return _result(similarity(left, right, _metric(ev, node)), nulls, single)


@function("vector_distance")
def _vector_distance(ev: Evaluator, node: exp.Func) -> Value:
    left, right, nulls, single = _pair(ev, node)
    if left.size == 0 or right.size == 0:
        return NULL
    return _result(distance(left, right, _metric(ev, node)), nulls, single)


def _fixed(measure: Callable[[Matrix, Matrix, str], npt.NDArray[np.float64]], metric: str) -> Impl:
    def impl(ev: Evaluator, node: exp.Func) -> Value:
        left, right, nulls, single = _pair(ev, node)
        if left.size == 0 or right.size == 0:
            return NULL
        return _result(measure(left, right, metric), nulls, single)

    return impl


function("cosine_similarity")(_fixed(similarity, "cosine"))
function("l2_distance")(_fixed(distance, "l2"))
function("inner_product")(_fixed(similarity, "inner"))


@function("vector_dims")
def _vector_dims(ev: Evaluator, node: exp.Func) -> Value:
    value = ev.eval(_args(node)[0])
    if k.is_null_type(value):
        return NULL
    matrix, nulls = vectors(value, "vector_dims() argument")
    if isinstance(value, pa.Scalar):
        return pa.scalar(matrix.shape[-1], pa.int64())
    return pa.array(np.full(len(matrix), matrix.shape[-1], np.int64), mask=nulls)


@function("vector_norm")
def _vector_norm(ev: Evaluator, node: exp.Func) -> Value:
    value = ev.eval(_args(node)[0])
    if k.is_null_type(value):
        return NULL
    matrix, nulls = vectors(value, "vector_norm() argument")
    return _result(np.atleast_1d(_norms(matrix)), nulls, isinstance(value, pa.Scalar))
