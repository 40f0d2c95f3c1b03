"""The out-of-core CSC builder gives exactly scipy.sparse's CSC, under any memory budget."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings, strategies as st

from tiered.convert import ConvertError
from tiered.convert.csc import EdgeCollector, write_csc
from tiered.format import read_array_layout

TINY = 1 << 16          # the smallest memory limit: forces many buckets and re-partitioning
BIG = 1 << 30


def reference(src, dst, n, reverse=False, drop_self_loops=False, dedup=False, weight=None):
    """(indptr, indices, per-edge weights) of the in-neighbour CSC, built by scipy."""
    src, dst = np.asarray(src, np.int64), np.asarray(dst, np.int64)
    w = np.ones(len(src)) if weight is None else np.asarray(weight, np.float64)
    if reverse:
        src, dst, w = np.concatenate([src, dst]), np.concatenate([dst, src]), np.tile(w, 2)
    if drop_self_loops:
        keep = src != dst
        src, dst, w = src[keep], dst[keep], w[keep]
    counts = sp.csc_matrix((np.ones(len(src)), (src, dst)), shape=(n, n))   # sums repeats
    counts.sort_indices()
    weights = sp.csc_matrix((w, (src, dst)), shape=(n, n))
    weights.sort_indices()
    if dedup:
        return counts.indptr.astype(np.int64), counts.indices, weights.data
    reps = counts.data.astype(np.int64)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(dst, minlength=n))])
    return indptr.astype(np.int64), np.repeat(counts.indices, reps), None


def build(tmp_path, src, dst, n, *, limit, staged=False, block=None, weight=None, **opts):
    c = EdgeCollector(tmp_path / "scratch", memory_limit=limit,
                      num_nodes=None if staged else n, weighted=weight is not None,
                      expected_edges=len(src), progress=False, **opts)
    step = block or max(1, len(src))
    for s in range(0, len(src), step):
        c.add(src[s:s + step], dst[s:s + step],
              None if weight is None else weight[s:s + step])
    c.finish(min_nodes=n)
    nb = len(c._bucket_list)
    stats = write_csc(c, tmp_path / "out", chunk_bytes=1 << 12)
    c.close()
    get = lambda name: read_array_layout(tmp_path / "out", name).read_all()  # noqa: E731
    w = get("edge_weight") if weight is not None else None
    assert not list((tmp_path / "scratch").iterdir()), "scratch files left behind"
    return get("indptr"), get("indices"), w, stats, nb


def power_law_edges(seed, n, e):
    rng = np.random.default_rng(seed)
    return (rng.zipf(1.6, e) % n).astype(np.int64), (rng.zipf(1.4, e) % n).astype(np.int64)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("dedup", [False, True])
@pytest.mark.parametrize("staged", [False, True])
def test_matches_scipy_in_memory_and_out_of_core(tmp_path, reverse, dedup, staged):
    n, e = 700, 20000
    src, dst = power_law_edges(1, n, e)
    ref = reference(src, dst, n, reverse, True, dedup)
    results = []
    for limit in (BIG, TINY):
        d = tmp_path / str(limit)
        ip, ix, _, stats, nb = build(d, src, dst, n, limit=limit, staged=staged, block=3001,
                                     reverse=reverse, drop_self_loops=True, dedup=dedup)
        np.testing.assert_array_equal(ip, ref[0])
        np.testing.assert_array_equal(ix, ref[1])
        assert ix.dtype == np.int32
        assert stats.num_edges == len(ref[1])
        deg = np.diff(ref[0])
        assert (stats.degree_min, stats.degree_max) == (deg.min(), deg.max())
        results.append(nb)
    assert results[1] > 1, "the tiny memory limit should have forced several partitions"


def test_weights_are_carried_and_merged(tmp_path):
    n, e = 300, 8000
    src, dst = power_law_edges(2, n, e)
    w = np.random.default_rng(3).integers(1, 9, e).astype(np.float32)
    ref_ip, ref_ix, ref_w = reference(src, dst, n, dedup=True, weight=w)
    for limit in (BIG, TINY):
        ip, ix, ww, _, _ = build(tmp_path / str(limit), src, dst, n, limit=limit, weight=w,
                                 dedup=True)
        np.testing.assert_array_equal(ip, ref_ip)
        np.testing.assert_array_equal(ix, ref_ix)
        np.testing.assert_allclose(ww, ref_w)          # integer weights: sums are exact


def test_hub_larger_than_the_budget_is_split_by_source(tmp_path, monkeypatch):
    """One destination with more in-edges than fit in memory, and one repeated edge."""
    n = 5000
    rng = np.random.default_rng(4)
    src = np.concatenate([rng.integers(0, n, 30000), np.full(6000, 9), rng.integers(0, n, 500)])
    dst = np.concatenate([np.full(30000, 17), np.full(6000, 4), rng.integers(0, n, 500)])
    calls = {"split": 0, "pair": 0}
    split, pair = EdgeCollector._split_runs, EdgeCollector._single_pair_runs

    def count(name, f):
        def wrapped(self, *a):
            calls[name] += 1
            yield from f(self, *a)
        return wrapped
    monkeypatch.setattr(EdgeCollector, "_split_runs", count("split", split))
    monkeypatch.setattr(EdgeCollector, "_single_pair_runs", count("pair", pair))
    for dedup in (False, True):
        ref = reference(src, dst, n, dedup=dedup)
        ip, ix, _, _, _ = build(tmp_path / str(dedup), src, dst, n, limit=TINY, dedup=dedup)
        np.testing.assert_array_equal(ip, ref[0])
        np.testing.assert_array_equal(ix, ref[1])
    assert calls["split"] > 0 and calls["pair"] > 0


def test_compact_ids_renumber_in_order(tmp_path):
    src = np.array([10**12, 5, 77, 5], np.int64)
    dst = np.array([77, 10**12, 5, 5], np.int64)
    c = EdgeCollector(tmp_path / "s", memory_limit=TINY, compact_ids=True, progress=False)
    c.add(src, dst)
    c.finish()
    np.testing.assert_array_equal(c.node_ids, [5, 77, 10**12])
    write_csc(c, tmp_path / "out", 1 << 12)
    c.close()
    ip = read_array_layout(tmp_path / "out", "indptr").read_all()
    ix = read_array_layout(tmp_path / "out", "indices").read_all()
    ref = reference(np.searchsorted([5, 77, 10**12], src), np.searchsorted([5, 77, 10**12], dst), 3)
    np.testing.assert_array_equal(ip, ref[0])
    np.testing.assert_array_equal(ix, ref[1])


def test_out_of_range_ids_name_their_origin(tmp_path):
    c = EdgeCollector(tmp_path / "s", memory_limit=TINY, num_nodes=10, progress=False)
    with pytest.raises(ConvertError, match=r"edges.txt:7: node id 10 out of range \[0, 10\)"):
        c.add(np.array([1, 2]), np.array([3, 10]), where=lambda k: f"edges.txt:{6 + k}")
    c.close()
    assert not (tmp_path / "s").exists() or not list((tmp_path / "s").iterdir())


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 40), st.lists(st.tuples(st.integers(0, 39), st.integers(0, 39)),
                                    max_size=300),
       st.booleans(), st.booleans(), st.booleans())
def test_any_small_graph(tmp_path_factory, n, pairs, reverse, loops, dedup):
    pairs = [(s % n, d % n) for s, d in pairs]
    src = np.array([p[0] for p in pairs], np.int64)
    dst = np.array([p[1] for p in pairs], np.int64)
    ref = reference(src, dst, n, reverse, loops, dedup)
    ip, ix, _, _, _ = build(tmp_path_factory.mktemp("g"), src, dst, n, limit=TINY, block=37,
                            reverse=reverse, drop_self_loops=loops, dedup=dedup)
    np.testing.assert_array_equal(ip, ref[0])
    np.testing.assert_array_equal(ix, ref[1])
