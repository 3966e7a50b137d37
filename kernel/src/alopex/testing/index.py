"""The vector index conformance suite: recall against the exact ``flat`` index, updates,
removals, filtered search, threads, persistence, padding, batch queries and dimension
checks."""

from __future__ import annotations

import dataclasses
import functools
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import pytest

from alopex.contracts.index import METRICS, Ids, VectorIndex, Vectors
from alopex.errors import AlopexError, DataError
from alopex.testing._engines import is_exact, open_index

#: the reference every provider is measured against
REFERENCE = "flat"
#: selectivities of the ``allow`` sets in the filtered-search tests
SELECTIVITIES = (0.1, 0.01, 0.001)

Distances = npt.NDArray[np.float32]


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Clustered vectors under sparse int64 ids, and queries drawn from the same clusters."""

    ids: Ids
    vectors: Vectors
    queries: Vectors

    def model(self) -> dict[int, Vectors]:
        return dict(zip(self.ids.tolist(), self.vectors, strict=True))


@functools.cache
def clustered(n: int, dim: int, queries: int, seed: int = 20_240_531) -> Dataset:
    """``n`` vectors around 50 centres with norms spread over 0.5-1.5x, so that ``cosine``,
    ``l2`` and ``inner`` rank differently. Fixed seed; the arrays are read-only."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, dim))

    def sample(count: int) -> Vectors:
        points = centres[rng.integers(0, len(centres), count)]
        points = points + rng.normal(scale=0.35, size=(count, dim))
        return (points * rng.uniform(0.5, 1.5, size=(count, 1))).astype(np.float32)

    vectors, probes = sample(n), sample(queries)
    # Sparse, large ids: a provider must not assume ids are dense row numbers.
    ids = rng.permutation(np.unique(rng.integers(1, 2**40, size=2 * n)))[:n].astype(np.int64)
    for array in (ids, vectors, probes):
        array.setflags(write=False)
    return Dataset(ids, vectors, probes)


def recall(found: Ids, truth: Ids) -> float:
    """Share of the true neighbours (``truth``, ``-1`` padded) that ``found`` returned."""
    hits = total = 0
    for got, row in zip(found, truth, strict=True):
        want = row[row >= 0]
        hits += np.intersect1d(got[got >= 0], want).size
        total += want.size
    return hits / total if total else 1.0


def true_distance(metric: str, queries: Vectors, vectors: Vectors) -> npt.NDArray[np.float64]:
    """The contract's distance from each query to its row of ``vectors`` (``(q, n, dim)``),
    in float64: shape ``(q, n)``."""
    q = queries.astype(np.float64)[:, None, :]
    m = vectors.astype(np.float64)
    if metric == "l2":
        return np.asarray(((m - q) ** 2).sum(axis=2), dtype=np.float64)
    dot = np.asarray((m * q).sum(axis=2), dtype=np.float64)
    if metric == "inner":
        return -dot
    norms = np.linalg.norm(m, axis=2) * np.linalg.norm(q, axis=2)
    return 1.0 - dot / np.where(norms == 0, 1.0, norms)


def check_results(
    metric: str,
    queries: Vectors,
    k: int,
    result: tuple[Ids, Distances],
    model: Mapping[int, Vectors],
    allow: Iterable[int] | None = None,
) -> None:
    """Shape, dtype, padding, ordering, membership and distances of one search result."""
    ids, distances = result
    assert ids.shape == distances.shape == (len(queries), k)
    assert ids.dtype == np.int64 and distances.dtype == np.float32
    candidates = set(model) if allow is None else set(model).intersection(allow)
    found = min(k, len(candidates))
    counts = (ids >= 0).sum(axis=1)
    assert (counts == found).all(), (
        f"rows with {sorted(set(counts.tolist()))} ids for k={k} with {len(candidates)} candidates"
    )
    assert (ids[:, found:] == -1).all(), "-1 pads only at the end"
    assert np.isinf(distances[:, found:]).all(), "pads have distance inf"
    hits, dist = ids[:, :found], distances[:, :found]
    for row in hits.tolist():
        assert len(set(row)) == found, f"an id returned twice: {row}"
        assert candidates.issuperset(row), f"returned ids outside the candidates: {row}"
    if found:
        dim = len(queries[0])
        vectors = np.stack([model[i] for i in hits.ravel().tolist()]).reshape(-1, found, dim)
        np.testing.assert_allclose(
            dist, true_distance(metric, queries, vectors), rtol=1e-3, atol=1e-3
        )
        assert (np.diff(dist, axis=1) >= -1e-4).all(), "not closest first"


def run_threads(targets: Iterable[Callable[[], None]], timeout: float = 120) -> None:
    """Run ``targets`` on threads at once; fail if one is still running after ``timeout``
    seconds (a deadlock)."""
    threads = [threading.Thread(target=target, daemon=True) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    stuck = sum(thread.is_alive() for thread in threads)
    assert not stuck, f"{stuck} of {len(threads)} threads still running after {timeout} s"


@dataclasses.dataclass(frozen=True)
class Built:
    """A provider's index and the reference holding the same vectors (see ``model``)."""

    metric: str
    index: VectorIndex
    reference: VectorIndex
    data: Dataset
    model: Mapping[int, Vectors]


class IndexSuite:
    """Subclass with ``provider = "<name>"``; every test opens the index by that name.

    Providers with the ``exact`` capability must return exactly what ``flat`` returns;
    the others must reach ``min_recall`` at the parameters in ``params`` (the provider's
    defaults unless a subclass sets some).
    """

    provider: ClassVar[str]
    params: ClassVar[Mapping[str, Any]] = {}
    min_recall: ClassVar[float] = 0.95
    k: ClassVar[int] = 10
    #: the recall data set: vectors x dimensions, and how many queries
    size: ClassVar[int] = 5_000
    dim: ClassVar[int] = 32
    query_count: ClassVar[int] = 200

    @classmethod
    def make(cls, metric: str, dim: int | None = None) -> VectorIndex:
        return open_index(cls.provider, dim or cls.dim, metric, cls.params)

    @classmethod
    def make_reference(cls, metric: str, dim: int | None = None) -> VectorIndex:
        return open_index(REFERENCE, dim or cls.dim, metric)

    def require_exact(self) -> None:
        if not is_exact(self.provider):
            pytest.skip(f"index {self.provider!r} does not declare the 'exact' capability")

    def compare(
        self,
        metric: str,
        index: VectorIndex,
        reference: VectorIndex,
        model: Mapping[int, Vectors],
        queries: Vectors,
        k: int,
        allow: Ids | None = None,
    ) -> float:
        """Check ``index`` against the model and ``reference``; return its recall."""
        result = index.search(queries, k, allow=allow)
        check_results(metric, queries, k, result, model, None if allow is None else allow.tolist())
        expected = reference.search(queries, k, allow=allow)
        if is_exact(self.provider):
            np.testing.assert_array_equal(result[0], expected[0])
            np.testing.assert_allclose(result[1], expected[1], rtol=1e-5, atol=1e-5)
        found = recall(result[0], expected[0])
        assert found >= self.min_recall, (
            f"recall@{k} {found:.4f} < {self.min_recall} ({metric}, allow={allow is not None})"
        )
        return found

    def small(self, seed: int = 7) -> Dataset:
        return clustered(1_000, self.dim, 50, seed)

    @classmethod
    def loaded_pair(cls, metric: str, data: Dataset) -> tuple[VectorIndex, VectorIndex]:
        index, reference = cls.make(metric), cls.make_reference(metric)
        for target in (index, reference):
            target.add(data.ids, data.vectors)
        return index, reference

    @pytest.fixture(scope="class", params=METRICS)
    @classmethod
    def built(cls, request: pytest.FixtureRequest) -> Built:
        """The recall data set in the provider and in ``flat``, shared by read-only tests."""
        data = clustered(cls.size, cls.dim, cls.query_count)
        index, reference = cls.loaded_pair(request.param, data)
        return Built(request.param, index, reference, data, data.model())

    # -- recall ---------------------------------------------------------------------------

    def test_recall_against_flat(
        self, built: Built, record_property: Callable[[str, object], None]
    ) -> None:
        assert len(built.index) == self.size
        found = self.compare(
            built.metric, built.index, built.reference, built.model, built.data.queries, self.k
        )
        record_property(f"recall@{self.k}[{built.metric}]", found)

    def test_exact_provider_matches_flat(self, built: Built) -> None:
        self.require_exact()
        queries = built.data.queries
        for k in (1, self.k, 100):
            got, want = built.index.search(queries, k), built.reference.search(queries, k)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-5)

    def test_batch_equals_one_by_one(self, built: Built) -> None:
        queries = built.data.queries[:30]
        allow = built.data.ids[::10]
        for subset in (None, allow):
            batch_ids, batch_dist = built.index.search(queries, self.k, allow=subset)
            for n, query in enumerate(queries):
                ids, dist = built.index.search(query[None, :], self.k, allow=subset)
                np.testing.assert_array_equal(ids[0], batch_ids[n])
                # BLAS may sum a batch in another order: float32 rounding, not a bug
                np.testing.assert_allclose(dist[0], batch_dist[n], rtol=1e-5, atol=1e-5)

    def test_any_form_of_one_query_answers_alike(self, built: Built) -> None:
        """A (dim,) vector, a (1, dim) row, float64, a strided view and a list are one
        query: the same answer as a (1, dim) float32 matrix."""
        query = built.data.queries[3]
        ids, dist = built.index.search(query[None, :], self.k)
        strided = np.repeat(query, 2)[::2]
        for form in (query, query.astype(np.float64), strided, query.tolist()):
            got_ids, got_dist = built.index.search(form, self.k)
            np.testing.assert_array_equal(got_ids, ids)
            np.testing.assert_allclose(got_dist, dist, rtol=1e-5, atol=1e-6)

    def test_a_query_with_nan_or_inf_is_safe(self, built: Built) -> None:
        """Its answer is unspecified, but the call returns (or raises DataError) without
        a warning, alone, in a batch, and filtered."""
        query = built.data.queries[:3].copy()
        allow = built.data.ids[::3]
        for bad in (np.nan, np.inf, -np.inf):
            query[1, 2] = bad
            for queries, subset in ((query[1], None), (query, None), (query, allow)):
                with warnings.catch_warnings():
                    warnings.simplefilter("error")
                    try:
                        ids, dist = built.index.search(queries, self.k, allow=subset)
                    except DataError:
                        continue
                assert ids.shape == dist.shape == (len(np.atleast_2d(queries)), self.k)
        ids, dist = built.index.search(built.data.queries[:1], self.k)  # still answers
        assert (ids >= 0).all() and np.isfinite(dist).all()

    # -- filtered search ------------------------------------------------------------------

    @pytest.mark.parametrize("selectivity", SELECTIVITIES)
    def test_filtered_search(
        self,
        built: Built,
        selectivity: float,
        record_property: Callable[[str, object], None],
    ) -> None:
        rng = np.random.default_rng(int(selectivity * 1e6))
        allowed = rng.choice(built.data.ids, max(1, round(self.size * selectivity)), replace=False)
        unknown = np.arange(-20, 0, dtype=np.int64) * 3 + 1  # ids the index never held
        allow = rng.permutation(np.concatenate([allowed, unknown]))
        found = self.compare(
            built.metric,
            built.index,
            built.reference,
            built.model,
            built.data.queries,
            self.k,
            allow=allow,
        )
        record_property(f"filtered recall@{self.k}[{built.metric}, {selectivity:.1%}]", found)

    def test_allow_nothing_known(self, built: Built) -> None:
        queries = built.data.queries[:5]
        for allow in (np.array([], dtype=np.int64), np.array([-5, 3, 999], dtype=np.int64)):
            ids, dist = built.index.search(queries, self.k, allow=allow)
            assert (ids == -1).all() and np.isinf(dist).all()

    # -- threads --------------------------------------------------------------------------

    def test_threads_search_side_by_side(self, built: Built) -> None:
        """Four threads searching one query at a time, two of them at a beam width far
        from the others' (hnswlib's is per graph), get what one thread gets."""
        queries = built.data.queries
        knobs: list[Mapping[str, int]] = [
            {"ef_search": 10, "nprobe": 1},
            {"ef_search": 200, "nprobe": 64},
        ]
        serial = [
            [built.index.search(q[None, :], self.k, params=p) for q in queries] for p in knobs
        ]
        failures: list[BaseException] = []

        def search(turn: int) -> None:
            try:
                for _ in range(5):
                    for n, query in enumerate(queries):
                        ids, dist = built.index.search(query[None, :], self.k, params=knobs[turn])
                        np.testing.assert_array_equal(ids, serial[turn][n][0])
                        np.testing.assert_allclose(dist, serial[turn][n][1], rtol=1e-6)
            except BaseException as error:  # reported by the main thread
                failures.append(error)

        run_threads([functools.partial(search, n % 2) for n in range(4)])
        assert not failures, failures[0]

    @pytest.mark.parametrize("metric", METRICS)
    def test_searches_while_adding_and_removing(self, metric: str) -> None:
        """One thread adds new vectors (the index grows) and removes some while two
        search: every answer holds ids that were added, with their true distances, and
        the index ends as if the writes had run alone."""
        data = self.small()
        index, reference = self.loaded_pair(metric, data)
        extra = clustered(3_000, self.dim, 1, seed=11)
        new_ids = extra.ids + 2**41  # apart from data.ids
        every = {**data.model(), **dict(zip(new_ids.tolist(), extra.vectors, strict=True))}
        steps = [(new_ids[n::6], extra.vectors[n::6], new_ids[n::12]) for n in range(6)]
        failures: list[BaseException] = []
        writing = True

        def write() -> None:
            nonlocal writing
            try:
                for ids, vectors, gone in steps:
                    index.add(ids, vectors)
                    index.remove(gone)
            finally:
                writing = False

        def search() -> None:
            try:
                while writing:
                    found = index.search(data.queries[:3], self.k)
                    check_results(metric, data.queries[:3], self.k, found, every)
            except BaseException as error:  # reported by the main thread
                failures.append(error)

        run_threads([write, search, search])
        assert not failures, failures[0]
        for ids, vectors, gone in steps:
            reference.add(ids, vectors)
            reference.remove(gone)
            for row_id in gone.tolist():
                del every[row_id]
        self.compare(metric, index, reference, every, data.queries, self.k)

    # -- persistence ----------------------------------------------------------------------

    def test_save_load_round_trip(self, built: Built, tmp_path: Path) -> None:
        path = tmp_path / "index"
        built.index.save(path)
        again = self.make(built.metric)
        again.load(path)
        assert len(again) == len(built.index)
        queries, allow = built.data.queries, built.data.ids[::50]
        for subset in (None, allow):
            before = built.index.search(queries, self.k, allow=subset)
            after = again.search(queries, self.k, allow=subset)
            np.testing.assert_array_equal(after[0], before[0])
            np.testing.assert_allclose(after[1], before[1], rtol=1e-6, atol=1e-6)

    @pytest.mark.parametrize("metric", METRICS)
    def test_save_load_keeps_removals_and_updates(self, metric: str, tmp_path: Path) -> None:
        data = self.small()
        index, reference = self.loaded_pair(metric, data)
        model = data.model()
        gone, changed = data.ids[:100], data.ids[100:150]
        fresh = np.random.default_rng(1).normal(size=(len(changed), self.dim)).astype(np.float32)
        for target in (index, reference):
            target.remove(gone)
            target.add(changed, fresh)
        for row_id in gone.tolist():
            del model[row_id]
        model.update(zip(changed.tolist(), fresh, strict=True))
        index.save(tmp_path / "index")

        again = self.make(metric)
        again.add(np.array([1, 2, 3]), np.ones((3, self.dim), np.float32))  # replaced by load
        again.load(tmp_path / "index")
        assert len(again) == len(model)
        self.compare(metric, again, reference, model, data.queries, self.k)
        self.compare(metric, again, reference, model, fresh, self.k)
        # A loaded index keeps working: add back what was removed, remove something else.
        for target in (again, reference):
            target.add(gone, data.vectors[:100])
            target.remove(data.ids[500:600])
        model.update(zip(gone.tolist(), data.vectors[:100], strict=True))
        for row_id in data.ids[500:600].tolist():
            del model[row_id]
        assert len(again) == len(model)
        self.compare(metric, again, reference, model, data.queries, self.k)

    # -- updates and removals -------------------------------------------------------------

    @pytest.mark.parametrize("metric", METRICS)
    def test_add_replaces_the_vector_of_an_id(self, metric: str) -> None:
        data = self.small()
        index, reference = self.loaded_pair(metric, data)
        model = data.model()
        changed = data.ids[::10]
        fresh = np.random.default_rng(2).normal(size=(len(changed), self.dim)).astype(np.float32)
        fresh *= 3  # far from where they were
        for target in (index, reference):
            target.add(changed, fresh)
        model.update(zip(changed.tolist(), fresh, strict=True))
        assert len(index) == len(data.ids)
        self.compare(metric, index, reference, model, fresh, self.k)
        self.compare(metric, index, reference, model, data.vectors[::10], self.k)
        if metric != "inner":  # under -dot a vector need not be its own nearest neighbour
            ids, dist = index.search(fresh, 1)
            itself = ids[:, 0] == changed
            assert itself.mean() >= (1.0 if is_exact(self.provider) else self.min_recall)
            np.testing.assert_allclose(dist[itself, 0], 0, atol=1e-3)

    @pytest.mark.parametrize("metric", METRICS)
    def test_duplicate_ids_in_one_add_keep_the_last(self, metric: str) -> None:
        index = self.make(metric, dim=2)
        index.add(
            np.array([1, 2, 1, 3, 1]),
            np.array([[1, 0], [0, 1], [5, 5], [-1, 0], [3, 1]], np.float32),
        )
        assert len(index) == 3
        model = {1: np.array([3, 1], np.float32), 2: np.array([0, 1], np.float32)}
        model[3] = np.array([-1, 0], np.float32)
        queries = np.array([[3, 1], [1, 0], [5, 5]], np.float32)
        check_results(metric, queries, 5, index.search(queries, 5), model)

    @pytest.mark.parametrize("metric", METRICS)
    def test_removed_ids_are_never_returned(self, metric: str) -> None:
        data = self.small()
        index, reference = self.loaded_pair(metric, data)
        model = data.model()
        gone = data.ids[::3]
        unknown = np.array([-7, 0, 2**41], dtype=np.int64)
        for target in (index, reference):
            target.remove(np.concatenate([gone, unknown]))
        for row_id in gone.tolist():
            del model[row_id]
        assert len(index) == len(data.ids) - len(gone)
        index.remove(gone[:10])  # removing twice is a no-op
        assert len(index) == len(model)
        self.compare(metric, index, reference, model, data.queries, 50)
        self.compare(metric, index, reference, model, data.vectors[::3], self.k)
        allow = np.concatenate([gone[:200], data.ids[1::3][:100]])
        self.compare(metric, index, reference, model, data.queries, self.k, allow=allow)

    @pytest.mark.parametrize("metric", METRICS)
    def test_removed_then_added_ids_come_back(self, metric: str) -> None:
        data = self.small()
        index, reference = self.loaded_pair(metric, data)
        model = data.model()
        cycled = data.ids[:300]
        fresh = np.random.default_rng(3).normal(size=(300, self.dim)).astype(np.float32) * 2
        for target in (index, reference):
            target.remove(cycled)
        assert len(index) == len(data.ids) - 300
        for target in (index, reference):
            target.add(cycled, fresh)
        model.update(zip(cycled.tolist(), fresh, strict=True))
        assert len(index) == len(data.ids)
        self.compare(metric, index, reference, model, fresh, self.k)
        self.compare(metric, index, reference, model, data.queries, self.k)
        self.compare(metric, index, reference, model, fresh, self.k, allow=cycled[::2])

    @pytest.mark.parametrize("metric", METRICS)
    def test_removing_everything_empties_the_index(self, metric: str) -> None:
        data = self.small()
        index = self.make(metric)
        index.add(data.ids[:100], data.vectors[:100])
        index.remove(data.ids[:100])
        assert len(index) == 0
        ids, dist = index.search(data.queries[:4], self.k)
        assert (ids == -1).all() and np.isinf(dist).all()
        index.add(data.ids[:5], data.vectors[:5])
        ids, _ = index.search(data.queries[:4], self.k)
        assert {frozenset(row[row >= 0].tolist()) for row in ids} == {frozenset(data.ids[:5])}

    @pytest.mark.parametrize("metric", METRICS)
    def test_k_equal_to_the_live_count_after_heavy_removal(self, metric: str) -> None:
        data = self.small()
        index = self.make(metric)
        index.add(data.ids, data.vectors)
        index.remove(data.ids[50:])
        check_results(
            metric,
            data.queries,
            50,
            index.search(data.queries, 50),
            {i: v for i, v in zip(data.ids[:50].tolist(), data.vectors[:50], strict=True)},
        )

    # -- padding and edge cases -----------------------------------------------------------

    @pytest.mark.parametrize("metric", METRICS)
    def test_k_larger_than_the_index_pads(self, metric: str) -> None:
        data = self.small()
        index = self.make(metric)
        index.add(data.ids[:5], data.vectors[:5])
        model = {i: v for i, v in zip(data.ids[:5].tolist(), data.vectors[:5], strict=True)}
        check_results(metric, data.queries, 12, index.search(data.queries, 12), model)
        allow = data.ids[:3]
        result = index.search(data.queries, 12, allow=allow)
        check_results(metric, data.queries, 12, result, model, allow.tolist())

    @pytest.mark.parametrize("metric", METRICS)
    def test_empty_index_returns_only_padding(self, metric: str) -> None:
        index = self.make(metric)
        assert len(index) == 0
        queries = self.small().queries[:3]
        for allow in (None, np.array([1, 2], dtype=np.int64)):
            ids, dist = index.search(queries, self.k, allow=allow)
            assert ids.shape == dist.shape == (3, self.k)
            assert ids.dtype == np.int64 and dist.dtype == np.float32
            assert (ids == -1).all() and np.isinf(dist).all()

    def test_dimension_mismatch_is_a_data_error(self) -> None:
        index = self.make("l2")
        data = self.small()
        index.add(data.ids[:10], data.vectors[:10])
        wrong = np.ones((2, self.dim + 1), np.float32)
        with pytest.raises(
            DataError, match=rf"{self.dim + 1}.*{self.dim}|{self.dim}.*{self.dim + 1}"
        ):
            index.add(np.array([1, 2]), wrong)
        for bad in (
            np.ones((2, self.dim - 1), np.float32),
            np.ones((1, 2 * self.dim), np.float32),
            np.ones(self.dim + 1, np.float32),
            np.ones((1, 1, self.dim), np.float32),
        ):
            with pytest.raises(DataError, match=str(self.dim)):
                index.search(bad, self.k)
        with pytest.raises(AlopexError):
            index.add(np.array([1, 2, 3]), data.vectors[:2])  # 3 ids, 2 vectors
        assert len(index) == 10  # nothing was half-applied
        check_results(
            "l2",
            data.queries,
            10,
            index.search(data.queries, 10),
            {i: v for i, v in zip(data.ids[:10].tolist(), data.vectors[:10], strict=True)},
        )
