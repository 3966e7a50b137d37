"""``FaissIndex``: the :class:`~alopex.contracts.index.VectorIndex` contract over a faiss
IVF index (IVF-Flat, or IVF-PQ) or HNSW graph (``IndexHNSWFlat``), with lazy training,
deletes, filtered search and a one-file format.

**Kind.** ``IndexOptions.params`` decide it. ``kind="ivf"`` or ``kind="hnsw"`` says so
outright. Without ``kind``, any of ``nlist``, ``nprobe``, ``pq``, ``refine`` means IVF and
any of ``m``, ``ef_construction``, ``ef_search`` means HNSW (both at once is a
``ConfigError``); with none of them the index is IVF. SQL passes the ``CREATE INDEX ...
WITH`` options and nothing else, so ``USING IVF (e)`` (faiss is IVF's default provider)
is IVF and ``USING HNSW (e) WITH (provider='faiss', m=16)`` is HNSW; ``USING HNSW (e)
WITH (provider='faiss')`` with no HNSW option cannot be told apart from a bare ``USING
IVF`` and is IVF too, so name an HNSW option (``m=16`` is the default) to get HNSW.

**Metrics.** Distances follow the contract (smaller is closer): ``l2`` uses
``METRIC_L2`` (faiss's L2 is already squared); ``inner`` uses ``METRIC_INNER_PRODUCT``
and returns ``-dot``; ``cosine`` stores and queries unit vectors under
``METRIC_INNER_PRODUCT`` and returns ``1 - dot``.

**The exact copy.** The index keeps every vector as float32 (unit length for ``cosine``)
in numbered slots; the ids faiss holds are slot numbers, so any int64 row id works (faiss
reserves ``-1``) and filters are bitmaps over dense numbers. The copy serves the exact
search of small ``allow`` sets, IVF's training buffer, HNSW rebuilds and the final
ranking: whatever faiss returns is re-ranked by exact distance, so distances are exact
even for IVF-PQ, whose codes are lossy (it fetches ``refine`` x k candidates per query to
re-rank). It costs ``4 * dim`` bytes per vector beside faiss's own storage: IVF-PQ here
saves search time, not memory.

**Quantizer.** ``quantizer='fp16'`` (HNSW only) makes the graph an ``IndexHNSWSQ`` whose
nodes hold float16 vectors: half the bytes read per distance (at 100k x 384, ~1.3x
faster searches than float32 nodes at the same ef when the graph is not in the caches,
with recall@10 within 0.005; see docs/plugins.md for when it is), while answers stay
exactly ranked because the exact copy re-ranks them. Coordinates beyond float16's range
(65,504) are refused with a ``DataError`` rather than stored as infinities; cosine vectors
are unit length anyway.

**Training.** IVF needs k-means centroids. Until ``39 * nlist`` vectors are live (``39 *
max(nlist, 256)`` with ``pq``: each 8-bit sub-quantizer has 256 centroids) the index
answers from its exact copy; the ``add`` that reaches that trains on the live vectors (at
most 256 per centroid, sampled with a fixed seed) and moves them all into faiss. ``nlist``
therefore never exceeds 1/39 of the training vectors. A trained index stays trained when
removals shrink it.

**Deletes.** IVF removes with ``remove_ids`` (a hash-table direct map, so removal does not
scan the lists); an update is a remove and an add of the same slot. faiss's HNSW cannot
remove nodes: a removed or replaced vector's node is *dead*, excluded from every search by
an ``IDSelectorBitmap`` of the live nodes (so a search still finds k live ones, with no
guessing how far to over-fetch), and when dead nodes outnumber live ones the graph is
rebuilt from the exact copy. Between calls the graph thus never holds more than twice as
many nodes as live vectors, however many delete/re-insert rounds pass.

**Search.** One unfiltered query (the common case) takes a short path: faiss's search with
a ``SearchParametersHNSW`` made once per efSearch and change of the live nodes (with dead
nodes: their selector, the beam widened as below), and the k answers re-ranked exactly by
faiss's ``knn_*_by_idx`` (C++, no NumPy gathers). An ``allow`` set of at most
``exact_filter_max`` live ids, or below ``exact_filter_fraction`` of them, is searched
exactly over the copy. Other searches go to faiss (``SearchParametersIVF(sel=...,
nprobe=...)`` / ``SearchParametersHNSW(sel=..., efSearch=...)``, the selector a bitmap). A
filter passing a share s of the entries (for HNSW, dead nodes count as filtered out) scales
``nprobe`` or ``efSearch`` by 1/s, capped at ``nlist`` or the node count, so a query meets
about as many allowed candidates as an unfiltered one. The rows that found fewer than
``min(k, candidates)`` are searched again with ``nprobe`` doubled (up to ``nlist``) or
``efSearch`` doubled (three times), and what is still short falls back to the exact search.
HNSW under ``inner`` is weak at filtered graph search (an inner-product graph leaves
small-norm vectors unreachable; recall@10 0.89 at 10% selectivity on 5,000 clustered
vectors, against 1.00 for ``l2``), which the default exact thresholds mostly avoid.
``params={"nprobe": n}`` (and ``refine``) for IVF or ``{"ef_search": n}`` for HNSW override
the defaults for one call; other keys are ignored.

**Threads.** ``faiss.omp_set_num_threads(num_threads or os.cpu_count())`` before adding
and training (faiss's OpenMP setting is per process). Where cores are shared with other
work, spinning OpenMP threads cost more than they give (two threads made HNSW inserts
3-10x slower than one on a busy 2-vCPU machine): use ``num_threads=1`` there.

**File.** ``save(path)`` writes one file, replaced atomically: ``MAGIC``, a u64 header
size, a msgpack header (format, kind, dim, metric, structure, counts), the slots' row ids,
their in-use flags and vectors, HNSW's node-to-slot map, then the index as
``faiss.write_index`` writes it.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import attrs
import faiss as _faiss
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
from alopex_vector_faiss.hugepages import HugePages

KINDS = ("ivf", "hnsw")
IVF_PARAMS = frozenset({"nlist", "nprobe", "pq", "refine"})
HNSW_PARAMS = frozenset({"m", "ef_construction", "ef_search", "quantizer"})
#: HNSW node storage: full vectors, or faiss scalar-quantizer codes (``None``: no quantizer)
QUANTIZERS = {"none": None, "fp16": "QT_fp16"}
#: the largest finite float16
FP16_MAX = 65_504.0
#: faiss warns below 39 training vectors per centroid; training waits for that many
POINTS_PER_CENTROID = 39
#: faiss's k-means samples at most this many vectors per centroid
MAX_POINTS_PER_CENTROID = 256
#: bits per PQ code, so 2**8 centroids per sub-quantizer
PQ_NBITS = 8
TRAINING_SEED = 1234
#: first bytes of a saved index; see the module docstring for the rest of the format
MAGIC = b"ALXFAISS"
FORMAT = 1
#: HNSW searches that find fewer than k widen efSearch this many times (x2 each)
WIDEN_STEPS = 3
#: one-query buffer sets (per k) and search parameters (per ef) kept; more start over
MAX_CACHED = 8
ONE = np.float32(1)  # a float32 scalar: NumPy resolves float32 - float32 fastest
#: float32 cells per block of the exact search and of re-ranking (64 MiB)
BLOCK_CELLS = 1 << 24

Distances = npt.NDArray[np.float32]

#: faiss ships stubs that lag its SWIG API (no SearchParametersHNSW, DirectMap, PyCallbackIO*)
faiss: Any = _faiss


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"faiss index parameter {attribute.name!r} must be an int >= 1")


def _non_negative(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"faiss index parameter {attribute.name!r} must be an int >= 0")


def _fraction(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(f"faiss index parameter {attribute.name!r} must be a number from 0 to 1")


def _kind(_instance: object, _attribute: attrs.Attribute[Any], value: Any) -> None:
    if value not in KINDS:
        raise ConfigError(f"faiss index kind must be one of {', '.join(KINDS)}, got {value!r}")


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _quantizer(_instance: object, _attribute: attrs.Attribute[Any], value: Any) -> None:
    if value not in QUANTIZERS:
        raise ConfigError(
            f"faiss HNSW quantizer must be one of {', '.join(map(repr, QUANTIZERS))}, got {value!r}"
        )


@attrs.frozen
class FaissParams:
    """``IndexOptions.params`` of a ``faiss`` index (see the module docstring for how the
    kind is chosen)."""

    kind: str = attrs.field(default="ivf", validator=_kind)
    #: IVF: inverted lists (k-means centroids); fixed once trained
    nlist: int = attrs.field(default=100, validator=_positive)
    #: IVF: lists searched per query (at most nlist)
    nprobe: int = attrs.field(default=8, validator=_positive)
    #: IVF: PQ sub-quantizers (8 bits each; must divide dim); 0 keeps full vectors (IVF-Flat)
    pq: int = attrs.field(default=0, validator=_non_negative)
    #: IVF-PQ: candidates fetched per result, re-ranked by exact distance
    refine: int = attrs.field(default=4, validator=_positive)
    #: HNSW: graph degree (faiss ``M``); fixed once built
    m: int = attrs.field(default=16, validator=_positive)
    #: HNSW: beam width while inserting
    ef_construction: int = attrs.field(default=200, validator=_positive)
    #: HNSW: beam width while searching (raised to k when k is larger)
    ef_search: int = attrs.field(default=64, validator=_positive)
    #: HNSW: what the graph's nodes hold: float32 vectors ("none") or float16 ("fp16");
    #: answers are re-ranked by exact distance either way
    quantizer: str = attrs.field(default="none", converter=_lower, validator=_quantizer)
    #: an allow set of at most this many live ids is searched exactly...
    exact_filter_max: int = attrs.field(default=2_000, validator=_non_negative)
    #: ...and so is one smaller than this share of the live ids
    exact_filter_fraction: float = attrs.field(default=0.02, validator=_fraction)
    #: OpenMP threads for adds and training; 0 means one per CPU
    num_threads: int = attrs.field(default=0, validator=_non_negative)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> FaissParams:
        known = {field.name for field in attrs.fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ConfigError(
                f"unknown faiss index parameter(s) {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(sorted(known))}"
            )
        given = dict(params)
        ivf, hnsw = sorted(IVF_PARAMS & given.keys()), sorted(HNSW_PARAMS & given.keys())
        kind = given.get("kind")
        if kind is None:
            if ivf and hnsw:
                raise ConfigError(
                    f"faiss index parameters {ivf} are for IVF and {hnsw} for HNSW; "
                    "give one kind's parameters, or kind='ivf' / kind='hnsw'"
                )
            given["kind"] = "hnsw" if hnsw else "ivf"
        elif isinstance(kind, str):
            given["kind"] = kind = kind.lower()
            other = hnsw if kind == "ivf" else ivf if kind == "hnsw" else []
            if other:
                raise ConfigError(f"faiss index parameter(s) {other} do not apply to kind {kind!r}")
        return cls(**given)

    @property
    def train_size(self) -> int:
        """Live vectors an IVF index waits for before training."""
        centroids = max(self.nlist, 2**PQ_NBITS) if self.pq else self.nlist
        return POINTS_PER_CENTROID * centroids


class _Slots:
    """The exact float32 copy: vectors and row ids in numbered slots, freed slots reused."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.size = 0  # slots handed out so far; slots >= size were never used
        self.ids = np.empty(0, np.int64)
        self.used = np.empty(0, bool)
        self.vectors = np.empty((0, dim), np.float32)
        self.slot_of: dict[int, int] = {}
        self.free: list[int] = []

    @classmethod
    def restore(cls, ids: Ids, used: npt.NDArray[np.bool_], vectors: Vectors) -> _Slots:
        slots = cls(vectors.shape[1])
        slots.size = len(ids)
        slots.ids, slots.used, slots.vectors = ids, used, vectors
        live = np.flatnonzero(used)
        slots.slot_of = dict(zip(ids[live].tolist(), live.tolist(), strict=True))
        slots.free = np.flatnonzero(~used)[::-1].tolist()
        return slots

    def __len__(self) -> int:
        return len(self.slot_of)

    def put(self, ids: Ids, vectors: Vectors) -> tuple[Ids, npt.NDArray[np.bool_]]:
        """Store ``vectors`` under unique ``ids``; return their slots and which ids were
        already live (whose slots therefore held an older vector)."""
        slots = np.empty(len(ids), np.int64)
        known = np.zeros(len(ids), bool)
        new: list[int] = []
        for n, row_id in enumerate(ids.tolist()):
            slot = self.slot_of.get(row_id)
            if slot is None:
                new.append(n)
            else:
                slots[n], known[n] = slot, True
        if new:
            reused = [self.free.pop() for _ in range(min(len(new), len(self.free)))]
            grow = len(new) - len(reused)
            self._reserve(self.size + grow)
            slots[new] = reused + list(range(self.size, self.size + grow))
            self.size += grow
        self.ids[slots], self.used[slots], self.vectors[slots] = ids, True, vectors
        self.slot_of.update(zip(ids.tolist(), slots.tolist(), strict=True))
        return slots, known

    def _reserve(self, size: int) -> None:
        capacity = len(self.ids)
        if size <= capacity:
            return
        capacity = max(size, 2 * capacity, 64)
        grown_ids = np.empty(capacity, np.int64)
        grown_used = np.zeros(capacity, bool)
        grown_vectors = np.empty((capacity, self.dim), np.float32)
        grown_ids[: self.size] = self.ids[: self.size]
        grown_used[: self.size] = self.used[: self.size]
        grown_vectors[: self.size] = self.vectors[: self.size]
        self.ids, self.used, self.vectors = grown_ids, grown_used, grown_vectors

    def drop(self, ids: Ids) -> Ids:
        """Free the slots of the live ones among unique ``ids``; return those slots."""
        slots = [
            slot for row_id in ids.tolist() if (slot := self.slot_of.pop(row_id, None)) is not None
        ]
        freed = np.asarray(slots, np.int64)
        self.used[freed] = False
        self.free.extend(slots)
        return freed

    def slots_of(self, ids: Ids) -> Ids:
        """Slots of the live ones among unique ``ids``."""
        get = self.slot_of.get
        return np.asarray([s for i in ids.tolist() if (s := get(i)) is not None], np.int64)

    def live(self) -> Ids:
        return np.flatnonzero(self.used[: self.size]).astype(np.int64)


class _OneQuery:
    """Buffers for one query and its k answers, shaped as ``search`` returns them, and
    their faiss pointers, made once per k."""

    def __init__(self, k: int, dim: int) -> None:
        self.query = np.empty(dim, np.float32)  # a cosine query scaled to unit length
        self.nodes = np.empty((1, k), np.int64)  # graph nodes faiss found
        self.best = np.empty((1, k), np.int64)  # their slots, re-ranked
        self.scores = np.empty((1, k), np.float32)  # faiss's distances, then the exact ones
        pointer = faiss.swig_ptr
        self.query_at, self.nodes_at = pointer(self.query), pointer(self.nodes)
        self.best_at, self.scores_at = pointer(self.best), pointer(self.scores)


def _bitmap(members: Ids, count: int) -> tuple[Any, npt.NDArray[np.uint8]]:
    """An ``IDSelectorBitmap`` of ``members`` among ids ``0..count-1``, and the bitmap it
    points into (keep that alive for as long as the selector is used)."""
    bits = np.zeros(max(count, 1), bool)
    bits[members] = True
    packed = np.packbits(bits, bitorder="little")
    return faiss.IDSelectorBitmap(len(packed), faiss.swig_ptr(packed)), packed


def _id_array(ids: Ids) -> tuple[Any, Ids]:
    """An ``IDSelectorArray`` (what a hash-table direct map removes by) over ``ids``."""
    array = np.ascontiguousarray(ids, dtype=np.int64)
    return faiss.IDSelectorArray(len(array), faiss.swig_ptr(array)), array


class FaissIndex(VectorIndex):
    """A faiss IVF index or HNSW graph over an exact copy of the vectors, keyed by row id
    (see the module docstring)."""

    def __init__(self, options: IndexOptions) -> None:
        if options.metric not in METRICS:
            raise ConfigError(
                f"faiss index: unknown metric {options.metric!r}; use one of {METRICS}"
            )
        if options.dim < 1:
            raise ConfigError(f"faiss index: dim must be >= 1, got {options.dim}")
        self.options = options
        self.params = params = FaissParams.from_params(options.params)
        if params.kind == "ivf" and params.pq and options.dim % params.pq:
            raise ConfigError(
                f"faiss IVF-PQ: pq={params.pq} sub-quantizers must divide the dimension "
                f"{options.dim}"
            )
        self._threads = params.num_threads or os.cpu_count() or 1
        self._faiss_metric = (
            faiss.METRIC_L2 if options.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        )
        #: single unfiltered HNSW queries side by side (buffers per thread), the rest alone
        self._gate = SearchGate()
        self._slots = _Slots(options.dim)
        #: IVF: the trained faiss index (ids are slots), None while the copy is searched
        self._ivf: Any = None
        #: HNSW: the graph, its node -> slot map (-1: dead) and slot -> node map
        self._graph: Any = None
        self._node_slot = np.empty(0, np.int64)
        #: every live node's slot is its own number (a build with no reused slots): the
        #: one-query path then re-ranks faiss's answer as it is, without the map
        self._nodes_are_slots = True
        self._slot_node = np.empty(0, np.int64)
        self._live_nodes: tuple[Any, npt.NDArray[np.uint8]] | None = None
        #: HNSW: the graph's memory on 2 MiB pages (see hugepages.py)
        self._huge_pages = HugePages()
        #: HNSW: ``SearchParametersHNSW`` per efSearch of one unfiltered query, made once
        #: per change of the live nodes (see _beam), under _beams_lock: a beam may point
        #: into the live-node bitmap, which must not be made twice
        self._beams: dict[int, Any] = {}
        self._beams_lock = threading.Lock()
        #: one query's output buffers per k, per thread (see _search_one)
        self._buffers = threading.local()
        #: faiss's exact top-k over given rows of the copy, for re-ranking
        self._rerank = (
            faiss.knn_L2sqr_by_idx if options.metric == "l2" else faiss.knn_inner_products_by_idx
        )
        if params.kind == "hnsw":
            self._graph = self._new_graph()

    def _new_graph(self) -> Any:
        dim, m, metric = self.options.dim, self.params.m, self._faiss_metric
        quantizer = QUANTIZERS[self.params.quantizer]
        if quantizer is None:
            graph = faiss.IndexHNSWFlat(dim, m, metric)
        else:
            graph = faiss.IndexHNSWSQ(dim, getattr(faiss.ScalarQuantizer, quantizer), m, metric)
        graph.hnsw.efConstruction = self.params.ef_construction
        graph.hnsw.efSearch = self.params.ef_search
        return graph

    def _new_ivf(self) -> Any:
        dim, nlist, metric = self.options.dim, self.params.nlist, self._faiss_metric
        quantizer = faiss.IndexFlat(dim, metric)
        if self.params.pq:
            return faiss.IndexIVFPQ(quantizer, dim, nlist, self.params.pq, PQ_NBITS, metric)
        return faiss.IndexIVFFlat(quantizer, dim, nlist, metric)

    def _prepare(self, matrix: Vectors) -> Vectors:
        if self.options.metric != "cosine":
            return matrix
        return unit_rows(matrix)

    # -- writes ---------------------------------------------------------------------------

    def add(self, ids: Ids, vectors: Vectors) -> None:
        ids = as_ids(ids)
        matrix = as_vectors(vectors, self.options.dim)
        if len(ids) != len(matrix):
            raise InvalidArgument(f"{len(ids)} ids for {len(matrix)} vectors")
        if not len(ids):
            return
        ids, matrix = last_wins(ids, matrix)
        matrix = self._prepare(matrix)
        if self.params.quantizer == "fp16" and (peak := float(np.abs(matrix).max())) > FP16_MAX:
            raise DataError(
                f"faiss index with quantizer='fp16': a coordinate of {peak:g} does not fit in "
                f"float16 (at most {FP16_MAX:g}); use quantizer='none' for vectors this large"
            )
        with self._gate.exclusive():
            slots, known = self._slots.put(ids, matrix)
            faiss.omp_set_num_threads(self._threads)
            if self._graph is not None:
                self._kill(self._slot_node[slots[known]])
                self._append_nodes(slots, matrix)
                self._rebuild_if_mostly_dead()
            elif self._ivf is not None:
                if known.any():
                    selector, _keep = _id_array(slots[known])
                    self._ivf.remove_ids(selector)
                self._ivf.add_with_ids(matrix, slots)
            elif len(self._slots) >= self.params.train_size:
                self._train()

    def _train(self) -> None:
        live = self._slots.live()
        centroids = max(self.params.nlist, 2**PQ_NBITS if self.params.pq else 0)
        sample = live
        if len(live) > MAX_POINTS_PER_CENTROID * centroids:
            rng = np.random.default_rng(TRAINING_SEED)
            sample = np.sort(rng.choice(live, MAX_POINTS_PER_CENTROID * centroids, replace=False))
        ivf = self._new_ivf()
        ivf.cp.seed = TRAINING_SEED
        ivf.train(self._slots.vectors[sample])
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
        ivf.add_with_ids(self._slots.vectors[live], live)
        self._ivf = ivf

    def _append_nodes(self, slots: Ids, matrix: Vectors) -> None:
        first = int(self._graph.ntotal)
        self._graph.add(matrix)
        self._huge_pages.follow(self._graph)
        nodes = np.arange(first, first + len(slots), dtype=np.int64)
        self._node_slot = _fit(self._node_slot, first + len(slots))
        self._node_slot[nodes] = slots
        self._nodes_are_slots = self._nodes_are_slots and bool(np.array_equal(nodes, slots))
        self._slot_node = _fit(self._slot_node, self._slots.size)
        self._slot_node[slots] = nodes
        self._nodes_changed()

    def _nodes_changed(self) -> None:
        """Forget what depends on which nodes are live: the live-node bitmap and the
        one-query search parameters that may point into it (no search runs: writes are
        exclusive)."""
        self._live_nodes = None
        self._beams.clear()

    def _live_selector(self, nodes: int) -> tuple[Any, npt.NDArray[np.uint8]]:
        """An ``IDSelectorBitmap`` of the graph's live nodes and its bitmap, made once per
        change of the nodes."""
        if self._live_nodes is None:
            self._live_nodes = _bitmap(np.flatnonzero(self._node_slot[:nodes] >= 0), nodes)
        return self._live_nodes

    def _kill(self, nodes: Ids) -> None:
        if len(nodes):
            self._node_slot[nodes] = -1
            self._nodes_changed()

    def _rebuild_if_mostly_dead(self) -> None:
        if int(self._graph.ntotal) <= 2 * len(self._slots):
            return
        live = self._slots.live()
        self._graph = self._new_graph()
        self._node_slot[:] = -1
        self._nodes_are_slots = True  # the new graph numbers its nodes from 0 again
        self._slot_node[:] = -1
        if len(live):
            faiss.omp_set_num_threads(self._threads)
            self._append_nodes(live, self._slots.vectors[live])
        self._nodes_changed()

    def remove(self, ids: Ids) -> None:
        unique = np.unique(as_ids(ids))
        with self._gate.exclusive():
            slots = self._slots.drop(unique)
            if not len(slots):
                return
            if self._graph is not None:
                self._kill(self._slot_node[slots])
                self._slot_node[slots] = -1
                self._rebuild_if_mostly_dead()
            elif self._ivf is not None:
                selector, _keep = _id_array(slots)
                self._ivf.remove_ids(selector)

    # -- search ---------------------------------------------------------------------------

    def search(
        self,
        queries: Vectors,
        k: int,
        *,
        allow: Ids | None = None,
        params: Mapping[str, int] | None = None,
    ) -> tuple[Ids, Distances]:
        if k < 0:
            raise InvalidArgument(f"k must be >= 0, got {k}")
        matrix = as_vectors(queries, self.options.dim, "queries")
        if allow is None and len(matrix) == 1 and k:
            answer = self._search_one(matrix[0], k, params or {})
            if answer is not None:
                return answer
        out_ids = np.full((len(matrix), k), -1, dtype=np.int64)
        out_dist = np.full((len(matrix), k), np.inf, dtype=np.float32)
        if not len(matrix) or not k:
            return out_ids, out_dist
        matrix = self._prepare(matrix)
        with self._gate.exclusive():
            live = len(self._slots)
            candidates = None if allow is None else self._slots.slots_of(np.unique(as_ids(allow)))
            count = live if candidates is None else len(candidates)
            found = min(k, count)
            if not found:
                return out_ids, out_dist
            if candidates is not None and count == live:
                candidates = None  # a filter that lets everything through only costs time
            if self._exact_is_better(candidates):
                slots, dist = self._exact(matrix, found, candidates)
            else:
                slots, dist = self._approximate(matrix, found, candidates, params or {})
            out_ids[:, :found], out_dist[:, :found] = self._slots.ids[slots], dist
        return out_ids, out_dist

    def _search_one(
        self, query: Vectors, k: int, knobs: Mapping[str, int]
    ) -> tuple[Ids, Distances] | None:
        """One unfiltered query, the common case: faiss's search and the exact re-rank of
        its k answers, both through faiss's C++ entry points (``search_c``,
        ``knn_*_by_idx``, which release the GIL: threads search side by side) on buffers
        kept per k and thread (their pointers made once), without the batch path's
        bookkeeping. None when that path must answer (faiss found fewer than k live
        nodes: it widens).

        A cosine query is scaled to unit length in its buffer (``fvec_renorm_L2``): the
        walk and the ranking are those of the query as given, and the exact inner
        products are then cosines, one subtraction from distances (dividing them by the
        query's norm in NumPy cost 2-3 us a query, more than the copy)."""
        gate = self._gate
        gate.enter()
        try:
            graph, live = self._graph, len(self._slots)
            if graph is None or k > live:
                return None
            ef = max(int(knobs.get("ef_search") or self.params.ef_search), k)
            beam = self._beams.get(ef) or self._new_beam(ef)
            try:
                buffers = self._buffers.by_k[k]
            except (AttributeError, KeyError):
                buffers = self._new_buffers(k)
            metric = self.options.metric
            if metric == "cosine":  # the same walk and ranking, and scores ready to use
                np.copyto(buffers.query, query)
                faiss.fvec_renorm_L2(self.options.dim, 1, buffers.query_at)
                at = buffers.query_at
            else:
                at = faiss.swig_ptr(query)
            graph.search_c(1, at, k, buffers.scores_at, buffers.nodes_at, beam)
            if buffers.nodes[0, -1] < 0:  # faiss pads a short answer with -1
                return None
            if self._nodes_are_slots:  # dead nodes are never found here (see _beam)
                slots_at = buffers.nodes_at
            else:
                slots = self._node_slot[buffers.nodes]  # a gather beats np.take(out=) 5x
                slots_at = faiss.swig_ptr(slots)
            vectors = self._slots.vectors
            self._rerank(
                at,
                faiss.swig_ptr(vectors),
                slots_at,
                self.options.dim,
                1,
                len(vectors),
                k,
                k,
                buffers.scores_at,
                buffers.best_at,
            )
            if buffers.best[0, -1] < 0:  # a distance faiss would not rank (inf or NaN)
                return None
            ids = self._slots.ids[buffers.best]
            if metric == "cosine":
                scores = ONE - buffers.scores
            else:
                scores = -buffers.scores if metric == "inner" else buffers.scores.copy()
            return ids, scores
        finally:
            gate.leave()

    def _new_beam(self, ef: int) -> Any:
        with self._beams_lock:
            beam = self._beams.get(ef)
            if beam is None:
                if len(self._beams) >= MAX_CACHED:  # a few efs and limits are common
                    self._beams.clear()
                beam = self._beams[ef] = self._beam(ef)
            return beam

    def _new_buffers(self, k: int) -> _OneQuery:
        by_k = self._buffers.__dict__.setdefault("by_k", {})
        if len(by_k) >= MAX_CACHED:
            by_k.clear()
        buffers = by_k[k] = _OneQuery(k, self.options.dim)
        return buffers

    def _beam(self, ef: int) -> Any:
        """The search parameters of one unfiltered query at ``ef``: with dead nodes in
        the graph, a selector of the live ones and the beam widened by their share, as
        the batch path's first step does."""
        nodes, live = int(self._graph.ntotal), len(self._slots)
        if nodes == live:
            return faiss.SearchParametersHNSW(efSearch=ef)
        selector = self._live_selector(nodes)[0]
        return faiss.SearchParametersHNSW(sel=selector, efSearch=_widened(ef, live / nodes, nodes))

    def _exact_is_better(self, candidates: Ids | None) -> bool:
        if self._graph is None and self._ivf is None:
            return True  # IVF before training: the copy is all there is
        return candidates is not None and (
            len(candidates) <= self.params.exact_filter_max
            or len(candidates) < self.params.exact_filter_fraction * len(self._slots)
        )

    def _approximate(
        self, queries: Vectors, k: int, candidates: Ids | None, knobs: Mapping[str, int]
    ) -> tuple[Ids, Distances]:
        """faiss's search, widened for short rows, then exact for what is still short;
        the candidates it returns are re-ranked by exact distance."""
        count = len(self._slots) if candidates is None else len(candidates)
        keep: list[Any] = []  # the bitmaps the selectors point into
        run: Callable[[Vectors, int], Ids]
        if self._graph is not None:
            graph, nodes, fetch = self._graph, int(self._graph.ntotal), k
            node_slot = self._node_slot
            selector = None
            if candidates is not None:
                selector, bitmap = _bitmap(self._slot_node[candidates], nodes)
                keep.append(bitmap)
            elif nodes > len(self._slots):  # dead nodes: search the live ones
                live_nodes = self._live_selector(nodes)
                selector = live_nodes[0]
                keep.append(live_nodes)
            # Filtered-out and dead nodes take places in the beam: widen it by their share.
            ef = max(int(knobs.get("ef_search") or self.params.ef_search), k)
            ef = _widened(ef, count / nodes, nodes)
            steps = sorted({min(ef << n, max(ef, nodes)) for n in range(WIDEN_STEPS + 1)})

            def run(rows: Vectors, step: int) -> Ids:
                search = faiss.SearchParametersHNSW(sel=selector, efSearch=step)
                _, found = graph.search(rows, fetch, params=search)
                return np.where(found >= 0, node_slot[found], -1)

        else:
            ivf = self._ivf
            refine = max(int(knobs.get("refine") or self.params.refine), 1)
            fetch = min(k * refine, count) if self.params.pq else k
            selector = None
            if candidates is not None:
                selector, bitmap = _bitmap(candidates, self._slots.size)
                keep.append(bitmap)
            nlist = int(ivf.nlist)
            probe = max(int(knobs.get("nprobe") or self.params.nprobe), 1)
            # A filter passing a share s of the vectors leaves about s of each list: probe
            # 1/s times the lists, so a query meets as many candidates as unfiltered.
            probe = min(_widened(probe, count / len(self._slots), nlist), nlist)
            steps = [probe]
            while steps[-1] < nlist:
                steps.append(min(2 * steps[-1], nlist))

            def run(rows: Vectors, step: int) -> Ids:
                search = faiss.SearchParametersIVF(sel=selector, nprobe=step)
                _, slots = ivf.search(rows, fetch, params=search)
                return np.asarray(slots, np.int64)

        labels = run(queries, steps[0])
        for step in steps[1:]:
            short = np.flatnonzero((labels >= 0).sum(axis=1) < k)
            if not len(short):
                break
            labels[short] = run(queries[short], step)
        slots, dist = self._rank(queries, labels, k)
        short = np.flatnonzero((slots >= 0).sum(axis=1) < k)
        if len(short):
            slots[short], dist[short] = self._exact(queries[short], k, candidates)
        return slots, dist

    def _distances(self, queries: Vectors, vectors: Vectors) -> Distances:
        """The contract's distance from each query to each vector of its row: queries
        ``(q, dim)``, vectors ``(q, n, dim)`` as stored; returns ``(q, n)``."""
        if self.options.metric == "l2":
            diff = vectors - queries[:, None, :]
            dist: Distances = np.einsum("qnd,qnd->qn", diff, diff)
            return dist
        dot: Distances = np.einsum("qnd,qd->qn", vectors, queries)
        return 1 - dot if self.options.metric == "cosine" else -dot

    def _rank(self, queries: Vectors, labels: Ids, k: int) -> tuple[Ids, Distances]:
        """The ``k`` nearest of each row's candidate slots (``-1``: none) by exact distance."""
        out_slots = np.empty((len(queries), k), np.int64)
        out_dist = np.empty((len(queries), k), np.float32)
        block = max(1, BLOCK_CELLS // (labels.shape[1] * self.options.dim))
        for start in range(0, len(queries), block):
            part = labels[start : start + block]
            valid = part >= 0
            vectors = self._slots.vectors[np.where(valid, part, 0)]
            dist = self._distances(queries[start : start + block], vectors).astype(np.float32)
            dist[~valid] = np.inf
            order = np.argsort(dist, axis=1, kind="stable")[:, :k]
            best = np.take_along_axis(part, order, 1)
            best_dist = np.take_along_axis(dist, order, 1)
            best[np.isinf(best_dist)] = -1
            out_slots[start : start + block], out_dist[start : start + block] = best, best_dist
        return out_slots, out_dist

    def _exact(self, queries: Vectors, k: int, candidates: Ids | None) -> tuple[Ids, Distances]:
        """Brute force over ``candidates`` (live slots; None: all) of the exact copy."""
        slots = self._slots.live() if candidates is None else candidates
        vectors = self._slots.vectors[slots]
        metric = self.options.metric
        return exact_nearest(queries, vectors, slots, k, metric)

    # -- persistence ----------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write one file (see the module docstring), replacing ``path`` atomically."""
        path = Path(path)
        staged = path.with_name(f".{path.name}.tmp")
        with self._gate.exclusive():
            slots, size = self._slots, self._slots.size
            index = self._graph if self._graph is not None else self._ivf
            nodes = 0 if self._graph is None else int(self._graph.ntotal)
            header = msgpack.packb(
                {
                    "format": FORMAT,
                    "kind": self.params.kind,
                    "dim": self.options.dim,
                    "metric": self.options.metric,
                    "nlist": self.params.nlist,
                    "pq": self.params.pq,
                    "m": self.params.m,
                    "ef_construction": self.params.ef_construction,
                    "quantizer": self.params.quantizer,
                    "slots": size,
                    "nodes": nodes,
                    "faiss": index is not None,
                }
            )
            try:
                with open(staged, "wb") as out:
                    out.write(MAGIC + len(header).to_bytes(8, "little") + header)
                    node_slot = self._node_slot[:nodes]
                    for array in (
                        slots.ids[:size],
                        slots.used[:size],
                        slots.vectors[:size],
                        node_slot,
                    ):
                        out.write(np.ascontiguousarray(array).data)
                    if index is not None:
                        faiss.write_index(index, faiss.PyCallbackIOWriter(out.write))
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(staged, path)
            finally:
                staged.unlink(missing_ok=True)

    def load(self, path: Path) -> None:
        path = Path(path)
        with open(path, "rb") as file:
            if file.read(len(MAGIC)) != MAGIC:
                raise DataError(f"{path} is not an index saved by alopex-vector-faiss")
            try:
                header = msgpack.unpackb(file.read(int.from_bytes(file.read(8), "little")))
            except (ValueError, msgpack.UnpackException) as err:
                raise StorageCorruption(f"{path}: the faiss index header is damaged") from err
            self._check_header(path, header)
            size, dim = int(header["slots"]), self.options.dim
            ids = _read(file, np.int64, size, path)
            used = _read(file, np.bool_, size, path)
            vectors = _read(file, np.float32, size * dim, path).reshape(size, dim)
            node_slot = _read(file, np.int64, int(header["nodes"]), path)
            index = None
            if header["faiss"]:
                try:
                    index = faiss.read_index(faiss.PyCallbackIOReader(file.read))
                except RuntimeError as err:
                    raise StorageCorruption(
                        f"{path}: the faiss index does not load: {err}"
                    ) from err
        slots = _Slots.restore(ids, used, vectors)
        expected = len(node_slot) if header["kind"] == "hnsw" else len(slots)
        if index is not None and int(index.ntotal) != expected:
            raise StorageCorruption(f"{path}: faiss holds {index.ntotal} vectors, not {expected}")
        params = attrs.evolve(
            self.params,
            nlist=header["nlist"],
            pq=header["pq"],
            m=header["m"],
            ef_construction=header["ef_construction"],
            quantizer=header.get("quantizer", "none"),
        )
        with self._gate.exclusive():
            self.params, self._slots = params, slots
            self._nodes_changed()
            if header["kind"] == "hnsw":
                self._graph = index if index is not None else self._new_graph()
                self._graph.hnsw.efSearch = params.ef_search
                self._huge_pages.follow(self._graph)
                self._node_slot = node_slot
                self._slot_node = np.full(size, -1, np.int64)
                alive = np.flatnonzero(node_slot >= 0)
                self._slot_node[node_slot[alive]] = alive
                self._nodes_are_slots = bool(np.array_equal(node_slot[alive], alive))
            else:
                self._ivf = index

    def _check_header(self, path: Path, header: Any) -> None:
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise DataError(f"{path}: unsupported alopex-vector-faiss format")
        saved = (header["dim"], header["metric"], header["kind"])
        if saved != (self.options.dim, self.options.metric, self.params.kind):
            raise DataError(
                f"{path} holds a {saved[0]}-dimensional {saved[1]} {saved[2].upper()} index; "
                f"this index is {self.options.dim}-dimensional {self.options.metric} "
                f"{self.params.kind.upper()}"
            )

    # -- facts ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._slots)

    def stats(self) -> dict[str, Any]:
        """Live vectors, slots of the exact copy, and what faiss holds."""
        with self._gate.exclusive():
            facts: dict[str, Any] = {
                "kind": self.params.kind,
                "live": len(self._slots),
                "slots": self._slots.size,
            }
            if self._graph is not None:
                facts.update(
                    nodes=int(self._graph.ntotal),
                    dead=int(self._graph.ntotal) - len(self._slots),
                    m=self.params.m,
                    ef_construction=self.params.ef_construction,
                    ef_search=self.params.ef_search,
                    quantizer=self.params.quantizer,
                )
            else:
                facts.update(
                    trained=self._ivf is not None,
                    ntotal=0 if self._ivf is None else int(self._ivf.ntotal),
                    nlist=self.params.nlist,
                    nprobe=self.params.nprobe,
                    pq=self.params.pq,
                    train_size=self.params.train_size,
                )
            return facts


def _fit(array: Ids, size: int) -> Ids:
    """``array``, or a copy grown (at least doubled) to ``size`` entries, new ones ``-1``."""
    if len(array) >= size:
        return array
    grown = np.full(max(size, 2 * len(array), 64), -1, np.int64)
    grown[: len(array)] = array
    return grown


def _widened(value: int, share: float, cap: int) -> int:
    """``value / share``, rounded up and capped at ``cap``; never less than ``value``."""
    return max(value, min(math.ceil(value / share), cap))


def _read(file: BinaryIO, dtype: Any, count: int, path: Path) -> Any:
    width = np.dtype(dtype).itemsize * count
    raw = file.read(width)
    if len(raw) != width:
        raise StorageCorruption(f"{path} is cut short")
    return np.frombuffer(raw, dtype).copy()
