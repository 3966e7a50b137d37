"""``HnswIndex``: the :class:`~alopex.contracts.index.VectorIndex` contract over an hnswlib
HNSW graph, with growth, slot reuse after deletes, filtered search and a one-file format.

Distances follow the contract (smaller is closer). hnswlib's spaces map onto the metrics:

- ``cosine`` -> space ``cosine``: hnswlib stores unit vectors and returns ``1 - cos``,
  already the contract's distance;
- ``l2`` -> space ``l2``: hnswlib returns the squared Euclidean distance, which is the
  contract's ``l2`` distance (as in ``flat``);
- ``inner`` -> space ``ip``: hnswlib returns ``1 - dot``; subtracting 1 gives ``-dot``.

hnswlib's ``ip`` graph gives small-norm vectors few or no incoming links. Unfiltered
maximum-inner-product search does not need them, but a filtered search over the graph
may not reach an allowed one: on 50,000 clustered 32-d vectors (norms 0.5-1.5x) recall@10
of the graph's filtered search was 0.88 at 10% and 0.56 at 1% selectivity, against 1.00
for ``cosine`` and ``l2``. The reduction to L2 (one more coordinate ``sqrt(R^2-|x|^2)``)
fixes that but lost up to 44% of the unfiltered recall for queries far from the data, so
``inner`` keeps the ``ip`` space; its small allow sets are searched exactly like the
others' (``exact_filter_max``/``exact_filter_fraction``), and a caller who needs more can
raise those for ``inner`` indexes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import msgpack
import numpy as np
import numpy.typing as npt

from alopex.contracts.index import (
    METRICS,
    Ids,
    IndexOptions,
    SearchGate,
    VectorIndex,
    Vectors,
    as_ids,
    as_vectors,
    exact_nearest,
    last_wins,
    unit_rows,
)
from alopex.errors import ConfigError, DataError, InvalidArgument, StorageCorruption
from alopex.hugepages import advise_new_mappings

SPACES = {"cosine": "cosine", "l2": "l2", "inner": "ip"}
#: first bytes of a saved index; the format is MAGIC, u64 header size, msgpack header, graph
MAGIC = b"ALXHNSW\x01"
FORMAT = 1
#: filtered graph searches that find fewer than k widen ef this many times (x2 each)
WIDEN_STEPS = 3
ONE = np.float32(1)


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"hnswlib index parameter {attribute.name!r} must be an int >= 1")


def _non_negative(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"hnswlib index parameter {attribute.name!r} must be an int >= 0")


def _fraction(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(
            f"hnswlib index parameter {attribute.name!r} must be a number from 0 to 1"
        )


@attrs.frozen
class HnswParams:
    """``IndexOptions.params`` of an ``hnswlib`` index."""

    #: graph degree (hnswlib ``M``); fixed once the index is built
    m: int = attrs.field(default=16, validator=_positive)
    #: beam width while inserting; fixed once the index is built
    ef_construction: int = attrs.field(default=200, validator=_positive)
    #: beam width while searching (raised to k when k is larger)
    ef_search: int = attrs.field(default=64, validator=_positive)
    #: initial capacity; a full index doubles it
    max_elements: int = attrs.field(default=1024, validator=_positive)
    seed: int = attrs.field(default=100, validator=_non_negative)
    #: threads for inserts and unfiltered searches; 0 means one per CPU
    num_threads: int = attrs.field(default=0, validator=_non_negative)
    #: an allow set of at most this many live ids is searched exactly...
    exact_filter_max: int = attrs.field(default=2_000, validator=_non_negative)
    #: ...and so is one smaller than this share of the live ids
    exact_filter_fraction: float = attrs.field(default=0.02, validator=_fraction)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> HnswParams:
        known = {field.name for field in attrs.fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ConfigError(
                f"unknown hnswlib index parameter(s) {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(sorted(known))}"
            )
        return cls(**params)


def _labels(ids: Ids) -> npt.NDArray[np.uint64]:
    # hnswlib labels are size_t: an int64 id keeps its bits (negative ids round-trip too).
    return np.ascontiguousarray(ids, dtype=np.int64).view(np.uint64)


def _ids(labels: npt.ArrayLike) -> Ids:
    return np.ascontiguousarray(labels, dtype=np.uint64).view(np.int64)


class HnswIndex(VectorIndex):
    """An HNSW graph keyed by row id.

    - ``add`` of a live id updates its vector in place; of a removed id still in the graph
      revives its slot; of a new id takes a slot freed by a removal before growing, so
      delete/re-insert churn does not grow the graph. A full graph doubles its capacity.
    - ``remove`` marks the slot deleted (hnswlib ``mark_deleted``).
    - ``search`` with a small ``allow`` set (``exact_filter_max`` ids, or a share below
      ``exact_filter_fraction``) is an exact NumPy search over those vectors; larger sets
      use hnswlib's filtered graph search, widening ``ef`` when it finds fewer than k and
      falling back to the exact search.
    """

    def __init__(self, options: IndexOptions) -> None:
        if options.metric not in SPACES:
            raise ConfigError(
                f"hnswlib index: unknown metric {options.metric!r}; use one of {METRICS}"
            )
        if options.dim < 1:
            raise ConfigError(f"hnswlib index: dim must be >= 1, got {options.dim}")
        self.options = options
        self.params = HnswParams.from_params(options.params)
        self._threads = self.params.num_threads or os.cpu_count() or 1
        self._inner = options.metric == "inner"  # hnswlib answers 1 - dot: subtract 1
        self._row = (options.dim,)  # the last dimension of a query array
        #: unfiltered searches side by side at one ef (hnswlib's is per graph), the rest alone
        self._gate = SearchGate(self._set_ef, self.params.ef_search)
        self._live: set[int] = set()
        self._live_sorted: Ids | None = None  # _live as a sorted array, made on demand
        #: removed ids that may still own a deleted slot (and so can be revived in place)
        self._removed: set[int] = set()
        self._graph = self._new_graph(self.params.max_elements)

    def _new_graph(self, capacity: int) -> Any:
        import hnswlib

        graph = hnswlib.Index(space=SPACES[self.options.metric], dim=self.options.dim)
        with advise_new_mappings(self._graph_bytes(capacity, self.params.m)):
            graph.init_index(
                max_elements=capacity,
                M=self.params.m,
                ef_construction=self.params.ef_construction,
                random_seed=self.params.seed,
                allow_replace_deleted=True,
            )
        self._configure(graph)
        return graph

    def _graph_bytes(self, capacity: int, m: int) -> int:
        """The size of hnswlib's level-0 block: per node 2m links and their count, the
        vector and the label. It is malloc'd where the provider cannot see it, so it is
        put on huge pages through the mappings it creates (see alopex.hugepages): on
        100,000 x 128 nodes that made a query ~4 us (5%) faster."""
        return capacity * (8 * m + 4 + 4 * self.options.dim + 8)

    def _configure(self, graph: Any) -> None:
        """Settings of a graph about to be installed (then ``self._gate.setting`` is its
        ef)."""
        graph.set_ef(self.params.ef_search)
        graph.set_num_threads(self._threads)

    def _set_ef(self, ef: int) -> None:
        self._graph.set_ef(ef)

    def _vectors_of(self, ids: Ids) -> Vectors:
        """The vectors of live ``ids`` as stored (unit length for ``cosine``)."""
        if not len(ids):
            return np.empty((0, self.options.dim), dtype=np.float32)
        stored = self._graph.get_items(_labels(ids))
        return np.asarray(stored, dtype=np.float32).reshape(len(ids), self.options.dim)

    # -- writes ---------------------------------------------------------------------------

    def add(self, ids: Ids, vectors: Vectors) -> None:
        ids = as_ids(ids)
        matrix = as_vectors(vectors, self.options.dim)
        if len(ids) != len(matrix):
            raise InvalidArgument(f"{len(ids)} ids for {len(matrix)} vectors")
        if not len(ids):
            return
        ids, matrix = last_wins(ids, matrix)
        with self._gate.exclusive():
            self._revive(self._removed.intersection(ids.tolist()))
            known = np.fromiter((i in self._live for i in ids.tolist()), bool, len(ids))
            if known.any():  # in place: hnswlib updates a live label's vector and links
                self._graph.add_items(matrix[known], _labels(ids[known]), num_threads=self._threads)
            fresh = ~known
            if fresh.any():
                self._reserve(int(fresh.sum()))
                # replace_deleted: new labels take freed slots first. Only for labels the
                # graph does not hold, or it would keep the old slot as a duplicate.
                self._graph.add_items(
                    matrix[fresh],
                    _labels(ids[fresh]),
                    num_threads=self._threads,
                    replace_deleted=True,
                )
                self._live.update(ids[fresh].tolist())
                self._forget_evicted()
            self._live_sorted = None

    def _revive(self, row_ids: set[int]) -> None:
        for row_id in row_ids:
            self._removed.discard(row_id)
            try:
                self._graph.unmark_deleted(row_id & 0xFFFF_FFFF_FFFF_FFFF)
            except RuntimeError:  # its slot went to another id since: it is new again
                continue
            self._live.add(row_id)

    def _reserve(self, new: int) -> None:
        slots, capacity = self._graph.get_current_count(), self._graph.get_max_elements()
        grow = new - (slots - len(self._live))  # freed slots are used first
        if grow > 0 and slots + grow > capacity:
            capacity = max(2 * capacity, slots + grow)
            with advise_new_mappings(self._graph_bytes(capacity, int(self._graph.M))):
                self._graph.resize_index(capacity)

    def _forget_evicted(self) -> None:
        # Slots reused for new ids drop their old labels from the graph; forget those ids
        # now and then so churn over ever-new ids does not grow ``_removed`` for ever.
        freed = self._graph.get_current_count() - len(self._live)
        if len(self._removed) > 2 * freed + 1024:
            mapped = _ids(np.asarray(self._graph.get_ids_list(), dtype=np.uint64))
            self._removed.intersection_update(mapped.tolist())

    def remove(self, ids: Ids) -> None:
        with self._gate.exclusive():
            for row_id in self._live.intersection(as_ids(ids).tolist()):
                self._graph.mark_deleted(row_id & 0xFFFF_FFFF_FFFF_FFFF)
                self._live.discard(row_id)
                self._removed.add(row_id)
            self._live_sorted = None

    # -- search ---------------------------------------------------------------------------

    def search(
        self,
        queries: Vectors,
        k: int,
        *,
        allow: Ids | None = None,
        params: Mapping[str, int] | None = None,
    ) -> tuple[Ids, npt.NDArray[np.float32]]:
        if k < 0:
            raise InvalidArgument(f"k must be >= 0, got {k}")
        ef = (params.get("ef_search") if params else None) or self.params.ef_search
        # The common case, as close to a bare knn_query as it gets: hnswlib converts the
        # queries to C-contiguous float32 itself and refuses more than two dimensions, but
        # not a wrong last one (it reads past the vector), so that one is checked here.
        # Positional arguments: pybind11 takes ~1 us to match keywords.
        if allow is None and k and type(queries) is np.ndarray and queries.shape[-1:] == self._row:
            gate = self._gate
            gate.enter(ef if ef > k else k)
            try:
                if k <= len(self._live):
                    labels, dist = self._graph.knn_query(queries, k, self._threads)
                    # fresh C-contiguous uint64 and float32 arrays
                    return labels.view(np.int64), (dist - ONE if self._inner else dist)
            except (RuntimeError, TypeError, ValueError):  # deleted slots hid some of k
                pass  # (the widening path), or queries hnswlib refused (as_vectors says why)
            finally:
                gate.leave()
        matrix = as_vectors(queries, self.options.dim, "queries")
        out_ids = np.full((len(matrix), k), -1, dtype=np.int64)
        out_dist = np.full((len(matrix), k), np.inf, dtype=np.float32)
        if not len(matrix) or not k:
            return out_ids, out_dist
        with self._gate.exclusive():
            candidates = None if allow is None else self._allowed(as_ids(allow))
            count = len(self._live) if candidates is None else len(candidates)
            found = min(k, count)
            if not found:
                return out_ids, out_dist
            if candidates is not None and count == len(self._live):
                candidates = None  # a filter that lets everything through only costs time
            if candidates is not None and self._exact_is_cheaper(count):
                ids, dist = self._exact(matrix, found, candidates)
            else:
                ids, dist = self._graph_search(matrix, found, candidates, ef)
        out_ids[:, :found], out_dist[:, :found] = ids, dist
        return out_ids, out_dist

    def _allowed(self, allow: Ids) -> Ids:
        """The live ids among ``allow``, sorted and unique (NumPy, no loop per id)."""
        live = self._live_ids()
        unique = allow if bool((allow[1:] > allow[:-1]).all()) else np.unique(allow)
        if not len(live) or not len(unique):
            return live[:0]
        slots = np.minimum(np.searchsorted(live, unique), len(live) - 1)
        return np.asarray(unique[live[slots] == unique], dtype=np.int64)

    def _live_ids(self) -> Ids:
        if self._live_sorted is None:
            self._live_sorted = np.sort(np.fromiter(self._live, np.int64, len(self._live)))
        return self._live_sorted

    def _exact_is_cheaper(self, count: int) -> bool:
        # A filtered graph search calls back into Python for every candidate it meets and
        # must walk ~ef/selectivity nodes; scanning a few thousand vectors is cheaper.
        return (
            count <= self.params.exact_filter_max
            or count < self.params.exact_filter_fraction * len(self._live)
        )

    def _graph_search(
        self, queries: Vectors, k: int, candidates: Ids | None, ef_search: int
    ) -> tuple[Ids, npt.NDArray[np.float32]]:
        accept = None if candidates is None else set(_labels(candidates).tolist()).__contains__
        # The filter runs Python under the GIL: more threads would only contend for it.
        threads = self._threads if accept is None else 1
        ef = max(ef_search, k)
        slots = self._graph.get_current_count()
        for _ in range(WIDEN_STEPS + 1):
            self._gate.use(ef)
            try:
                labels, dist = self._graph.knn_query(
                    queries, k=k, num_threads=threads, filter=accept
                )
            except RuntimeError:  # some query found fewer than k: widen the beam
                if ef >= slots:
                    break
                ef = min(2 * ef, slots)
                continue
            return _ids(labels), self._distances(dist)
        if candidates is None:
            candidates = self._live_ids()
        return self._exact(queries, k, candidates)

    def _distances(self, dist: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        dist = np.asarray(dist, dtype=np.float32)
        return dist - ONE if self._inner else dist

    def _exact(
        self, queries: Vectors, k: int, candidates: Ids
    ) -> tuple[Ids, npt.NDArray[np.float32]]:
        """Brute force over ``candidates`` (live ids) with the vectors hnswlib stores."""
        vectors = self._vectors_of(candidates)
        metric = self.options.metric
        if metric == "cosine":  # hnswlib stores unit vectors; the query must be one too
            queries = unit_rows(queries)
        return exact_nearest(queries, vectors, candidates, k, metric)

    # -- persistence ----------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write one file: a small msgpack header (options, live and removed ids) and the
        graph hnswlib saved, replacing ``path`` atomically."""
        path = Path(path)
        graph_file = path.with_name(f".{path.name}.graph.tmp")
        staged = path.with_name(f".{path.name}.tmp")
        with self._gate.exclusive():
            header = msgpack.packb(
                {
                    "format": FORMAT,
                    "dim": self.options.dim,
                    "metric": self.options.metric,
                    "m": int(self._graph.M),
                    "ef_construction": int(self._graph.ef_construction),
                    "live": np.fromiter(self._live, np.int64, len(self._live)).tobytes(),
                    "removed": np.fromiter(self._removed, np.int64, len(self._removed)).tobytes(),
                }
            )
            try:
                self._graph.save_index(str(graph_file))
                with open(staged, "wb") as out, open(graph_file, "rb") as graph:
                    out.write(MAGIC + len(header).to_bytes(8, "little") + header)
                    shutil.copyfileobj(graph, out, 1 << 20)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(staged, path)
            finally:
                graph_file.unlink(missing_ok=True)
                staged.unlink(missing_ok=True)

    def load(self, path: Path) -> None:
        import hnswlib

        path = Path(path)
        with open(path, "rb") as file:
            if file.read(len(MAGIC)) != MAGIC:
                raise DataError(f"{path} is not an index saved by alopex-vector-hnsw")
            header = msgpack.unpackb(file.read(int.from_bytes(file.read(8), "little")))
            self._check_header(path, header)
            graph = hnswlib.Index(space=SPACES[self.options.metric], dim=self.options.dim)
            # hnswlib loads from a path and rejects trailing bytes: copy the graph out.
            fd, staged = _temporary(path)
            try:
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(file, out, 1 << 20)
                m = int(header.get("m") or self.params.m)  # at least the live nodes' block
                at_least = self._graph_bytes(len(header["live"]) // 8, m)
                with advise_new_mappings(at_least):
                    graph.load_index(staged, allow_replace_deleted=True)
            except RuntimeError as err:
                raise StorageCorruption(f"{path}: the hnswlib graph does not load: {err}") from err
            finally:
                os.unlink(staged)
        self._configure(graph)
        live = np.frombuffer(header["live"], dtype=np.int64).tolist()
        removed = np.frombuffer(header["removed"], dtype=np.int64).tolist()
        with self._gate.exclusive():
            self._graph, self._live, self._removed = graph, set(live), set(removed)
            self._gate.setting = self.params.ef_search
            self._live_sorted = None

    def _check_header(self, path: Path, header: Any) -> None:
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise DataError(f"{path}: unsupported alopex-vector-hnsw format")
        saved = (header["dim"], header["metric"])
        if saved != (self.options.dim, self.options.metric):
            raise DataError(
                f"{path} holds a {saved[0]}-dimensional {saved[1]} index; this index is "
                f"{self.options.dim}-dimensional {self.options.metric}"
            )

    # -- facts ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._live)

    def stats(self) -> dict[str, int]:
        """Live vectors, graph slots in use (live + freed), capacity and graph parameters."""
        with self._gate.exclusive():
            return {
                "live": len(self._live),
                "slots": int(self._graph.get_current_count()),
                "capacity": int(self._graph.get_max_elements()),
                "m": int(self._graph.M),
                "ef_construction": int(self._graph.ef_construction),
                "ef_search": self.params.ef_search,
            }


def _temporary(path: Path) -> tuple[int, str]:
    """A temporary file beside ``path``, else in the system's temporary directory."""
    try:
        return tempfile.mkstemp(prefix=f".{path.name}.", suffix=".graph", dir=path.parent)
    except OSError:
        return tempfile.mkstemp(prefix="alopex-hnsw-", suffix=".graph")
