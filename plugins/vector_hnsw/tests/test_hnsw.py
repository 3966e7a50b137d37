"""The ``hnswlib`` index passes the vector index conformance suite, and keeps what is its
own: bounded growth under delete/re-insert churn, the filtered graph search, parameters,
its file format and a plugin import that does not load hnswlib."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from alopex.contracts.index import IndexOptions
from alopex.errors import ConfigError, DataError, StorageCorruption
from alopex.testing import IndexSuite
from alopex.testing._engines import open_index
from alopex.testing.index import SELECTIVITIES, check_results, clustered, recall
from alopex.testing.memory import huge_pages_on
from alopex_vector_hnsw.index import HnswIndex

DIM = 32
CHEAP = {"m": 8, "ef_construction": 40}


class TestHnswIndex(IndexSuite):
    provider = "hnswlib"


def make(metric: str = "l2", **params: Any) -> HnswIndex:
    return HnswIndex(IndexOptions(DIM, metric, params))


# -- growth and slot reuse ----------------------------------------------------------------


def test_delete_reinsert_cycles_keep_the_graph_bounded() -> None:
    data = clustered(4_000, DIM, 50)
    # A small graph degree and beam: each re-add repairs links (hnswlib ``updatePoint``),
    # which costs ~10 inserts at the defaults; the bound does not depend on them.
    index = make(max_elements=256, **CHEAP)
    index.add(data.ids, data.vectors)
    fresh = index.stats()
    assert fresh["live"] == fresh["slots"] == 4_000
    cycled, rng = data.ids[:2_000], np.random.default_rng(5)
    for _ in range(20):
        index.remove(cycled)
        assert len(index) == 2_000
        index.add(cycled, rng.normal(size=(2_000, DIM)).astype(np.float32))
        assert len(index) == 4_000
    after = index.stats()
    assert after["slots"] <= 2 * fresh["slots"] and after["capacity"] <= 2 * fresh["capacity"]
    assert after["slots"] == fresh["slots"]  # re-added ids revive their own slots


def test_new_ids_reuse_the_slots_of_removed_ones() -> None:
    data = clustered(4_000, DIM, 50)
    index = make(max_elements=256, **CHEAP)
    index.add(data.ids[:2_000], data.vectors[:2_000])
    fresh = index.stats()
    rng = np.random.default_rng(6)
    live = data.ids[:2_000]
    for round_ in range(20):
        index.remove(live[:500])
        new_ids = np.arange(500, dtype=np.int64) + 10**12 + round_ * 1_000
        index.add(new_ids, rng.normal(size=(500, DIM)).astype(np.float32))
        live = np.concatenate([live[500:], new_ids])
        assert len(index) == 2_000
    after = index.stats()
    assert after["slots"] <= 2 * fresh["slots"] and after["capacity"] <= 2 * fresh["capacity"]
    ids, _ = index.search(data.queries, 20)
    assert np.isin(ids, live).all()


def test_a_full_graph_doubles_its_capacity() -> None:
    data = clustered(1_000, DIM, 10)
    index = make(max_elements=64)
    capacities = []
    for start in range(0, 1_000, 100):
        index.add(data.ids[start : start + 100], data.vectors[start : start + 100])
        capacities.append(index.stats()["capacity"])
    assert len(index) == 1_000
    assert capacities == [128, 256, 512, 512, 512, 1024, 1024, 1024, 1024, 1024]


GRAPH_ON_HUGE_PAGES = """
import gc, sys, weakref
from pathlib import Path
import numpy as np
from alopex.contracts.index import IndexOptions
from alopex.testing.index import clustered
from alopex.testing.memory import advised_holding
from alopex_vector_hnsw.index import HnswIndex

dim, rows, cheap = 1024, 9_000, {"m": 8, "ef_construction": 40}
vectors = clustered(2 * rows, dim, 10).vectors

def node(i):  # a node's vector, then its label, as hnswlib lays them out
    return vectors[i].tobytes() + i.to_bytes(8, "little")

index = HnswIndex(IndexOptions(dim, "l2", {"max_elements": rows, **cheap}))
index.add(np.arange(rows), vectors[:rows])
assert advised_holding(node(rows - 1)) is True, "made"
index.add(np.arange(rows, 2 * rows), vectors[rows:])  # doubles the capacity
assert advised_holding(node(2 * rows - 1)) is True, "grown"
index.save(Path(sys.argv[1]))
gone = weakref.ref(index)
del index
gc.collect()
assert gone() is None  # its graph is unmapped: only the loaded one can hold the node
loaded = HnswIndex(IndexOptions(dim, "l2", cheap))
loaded.load(Path(sys.argv[1]))
assert advised_holding(node(2 * rows - 1)) is True, "loaded"
"""


@pytest.mark.skipif(not huge_pages_on(), reason="needs Linux transparent huge pages")
def test_graph_memory_is_advised_onto_huge_pages(tmp_path: Path) -> None:
    """hnswlib allocates its graph out of sight: the mapping that holds a node must carry
    the huge-page advice once the graph is made, grown and loaded. 9,000 nodes of 16
    links + 4096 + 12 bytes are 36 MiB, which malloc maps afresh; in a fresh process,
    since one where a library raised malloc's mmap threshold may carve the block from
    the heap, where no new mapping shows it (the advice is best effort)."""
    done = subprocess.run(
        [sys.executable, "-c", GRAPH_ON_HUGE_PAGES, str(tmp_path / "graph")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


# -- filtered search through the graph ----------------------------------------------------


@pytest.mark.parametrize("metric", ["cosine", "l2", "inner"])
def test_filtered_graph_search_recall(
    metric: str, record_property: Callable[[str, object], None]
) -> None:
    """With the exact shortcut turned off, hnswlib's filtered graph search itself reaches
    the suite's recall for ``cosine`` and ``l2``. Its ``ip`` graph leaves small-norm
    vectors unreachable (see the ``alopex_vector_hnsw.index`` docstring), so ``inner`` is
    only held to what it measured on this data (0.90 at 10%)."""
    data = clustered(5_000, DIM, 100)
    graph = make(metric, exact_filter_max=0, exact_filter_fraction=0.0)
    reference = open_index("flat", DIM, metric)
    for target in (graph, reference):
        target.add(data.ids, data.vectors)
    model = data.model()
    rng = np.random.default_rng(8)
    for selectivity in SELECTIVITIES:
        allow = rng.choice(data.ids, round(5_000 * selectivity), replace=False)
        result = graph.search(data.queries, 10, allow=allow)
        check_results(metric, data.queries, 10, result, model, allow.tolist())
        found = recall(result[0], reference.search(data.queries, 10, allow=allow)[0])
        record_property(f"graph filtered recall@10[{metric}, {selectivity:.1%}]", found)
        assert found >= (0.85 if metric == "inner" else 0.95), (metric, selectivity, found)


def test_small_allow_sets_are_searched_exactly() -> None:
    data = clustered(5_000, DIM, 100)
    index = make("l2", ef_search=1, m=2, ef_construction=4)  # a poor graph...
    reference = open_index("flat", DIM, "l2")
    for target in (index, reference):
        target.add(data.ids, data.vectors)
    allow = data.ids[:2_000]  # ...is never asked: 2,000 ids go to the exact search
    got, want = (
        index.search(data.queries, 10, allow=allow),
        reference.search(data.queries, 10, allow=allow),
    )
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-4, atol=1e-4)


def test_k_beyond_ef_still_returns_k() -> None:
    data = clustered(3_000, DIM, 20)
    index = make("cosine", ef_search=4)
    index.add(data.ids, data.vectors)
    index.remove(data.ids[::2])
    ids, _ = index.search(data.queries, 500)
    assert ((ids >= 0).sum(axis=1) == 500).all()
    assert not np.isin(ids, data.ids[::2]).any()
    index.search(data.queries[:1], 1)
    assert index._graph.ef == 4  # the next search is back at the configured beam


def test_a_graph_that_cannot_find_k_widens_then_falls_back_to_exact() -> None:
    data = clustered(3_000, DIM, 20)
    index = make(m=2, ef_construction=2, ef_search=1, exact_filter_max=0)
    index.add(data.ids, data.vectors)
    index.remove(data.ids[:2_900])
    with pytest.raises(RuntimeError, match="contiguous 2D array"):  # hnswlib alone gives up
        index._graph.set_ef(100)
        index._graph.knn_query(data.queries, 100)
    index._graph.set_ef(1)
    model = dict(zip(data.ids[2_900:].tolist(), data.vectors[2_900:], strict=True))
    check_results("l2", data.queries, 100, index.search(data.queries, 100), model)
    allow = data.ids[2_900::2]
    result = index.search(data.queries, 50, allow=allow)
    check_results("l2", data.queries, 50, result, model, allow.tolist())
    index.search(data.queries[:1], 1)
    assert index._graph.ef == 1  # the next search is back at the configured beam


# -- metrics, ids, parameters -------------------------------------------------------------


def test_distances_follow_the_contract() -> None:
    vectors = np.array([[3, 4], [1, 0], [0, 2]], np.float32)
    query = np.array([[1, 1]], np.float32)
    expect = {
        "l2": [(1, 1.0), (2, 2.0), (0, 13.0)],  # squared Euclidean
        "inner": [(0, -7.0), (2, -2.0), (1, -1.0)],  # -dot
        "cosine": [(0, 1 - 7 / (5 * 2**0.5)), (1, 1 - 2**-0.5), (2, 1 - 2**-0.5)],
    }
    for metric, pairs in expect.items():
        index = HnswIndex(IndexOptions(2, metric))
        index.add(np.arange(3), vectors)
        ids, dist = index.search(query, 3)
        assert ids[0, 0] == pairs[0][0]
        np.testing.assert_allclose(dist[0], [d for _, d in pairs], rtol=1e-5, atol=1e-6)


def test_negative_and_huge_ids_round_trip() -> None:
    ids = np.array([-(2**62), -5, 0, 2**62], dtype=np.int64)
    index = HnswIndex(IndexOptions(2, "l2"))
    index.add(ids, np.array([[0, 0], [1, 0], [2, 0], [3, 0]], np.float32))
    found, _ = index.search(np.array([[0, 0]], np.float32), 4)
    assert found[0].tolist() == ids.tolist()
    found, _ = index.search(np.array([[3, 0]], np.float32), 2, allow=np.array([-5, 2**62]))
    assert found[0].tolist() == [2**62, -5]
    index.remove(np.array([-5]))
    index.add(np.array([-5]), np.array([[9, 0]], np.float32))
    found, _ = index.search(np.array([[9, 0]], np.float32), 1)
    assert found[0].tolist() == [-5]


def test_parameters_are_checked_and_applied() -> None:
    index = make(m=8, ef_construction=40, ef_search=12)
    assert index.stats()["m"] == 8 and index.stats()["ef_construction"] == 40
    assert index._graph.ef == 12
    with pytest.raises(ConfigError, match="'ef'.*known: ef_construction"):
        make(ef=10)
    with pytest.raises(ConfigError, match="'m' must be an int"):
        make(m="16")
    with pytest.raises(ConfigError, match="exact_filter_fraction"):
        make(exact_filter_fraction=2)
    with pytest.raises(ConfigError, match="unknown metric"):
        HnswIndex(IndexOptions(DIM, "hamming"))


# -- the file format ----------------------------------------------------------------------


def test_saved_file_is_one_file_and_checked_on_load(tmp_path: Path) -> None:
    data = clustered(500, DIM, 5)
    index = make("cosine")
    index.add(data.ids, data.vectors)
    path = tmp_path / "vectors.hnsw"
    index.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["vectors.hnsw"]
    with pytest.raises(DataError, match="16-dimensional cosine"):
        HnswIndex(IndexOptions(16, "cosine")).load(path)
    with pytest.raises(DataError, match="l2"):
        make("l2").load(path)
    (tmp_path / "other").write_bytes(b"not an index at all")
    with pytest.raises(DataError, match="not an index saved by alopex-vector-hnsw"):
        make("cosine").load(tmp_path / "other")
    (tmp_path / "cut").write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(StorageCorruption, match="does not load"):
        make("cosine").load(tmp_path / "cut")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut", "other", "vectors.hnsw"]


def test_plugin_import_does_not_load_hnswlib() -> None:
    code = (
        "import sys\n"
        "from alopex.plugins import PluginSet\n"
        "backend = PluginSet.load().select('index_providers', 'hnswlib')\n"
        "assert backend.plugin == 'hnsw', backend\n"
        "assert 'hnswlib' not in sys.modules\n"
        "from alopex.contracts.index import IndexOptions\n"
        "backend.factory(IndexOptions(4, 'l2'))\n"
        "assert 'hnswlib' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
