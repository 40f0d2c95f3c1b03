"""Neighbour sampler: valid edges, exact fanouts, uniform choice, thread-independent results,
the same batches through every tier and with or without the neighbour cache."""
from __future__ import annotations

import numba
import numpy as np
import pytest
from scipy import stats

from tiered import write_array
from tiered.sampling import (NeighborCache, NeighborSampler, SampledSuperbatch,
                             page_degree_score, page_reads)
from tiered.sampling.neighbor_cache import PAGE_BYTES


def power_law_csc(n: int, m: int, seed: int = 0):
    """A simple directed graph (no multi-edges, no self loops) with skewed degrees, as CSC."""
    rng = np.random.default_rng(seed)
    w = (np.arange(n) + 1.0) ** -0.8
    w = w / w.sum()
    perm = rng.permutation(n)
    src = perm[rng.choice(n, size=m, p=w)]
    dst = perm[rng.choice(n, size=m, p=w)]
    key = np.unique(dst.astype(np.int64) * n + src)
    dst, src = key // n, key % n
    keep = src != dst
    src, dst = src[keep], dst[keep]
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(dst, minlength=n), out=indptr[1:])
    return indptr, src.astype(np.int32)                  # sorted by (dst, src)


N, M = 3000, 40_000
INDPTR, INDICES = power_law_csc(N, M)
FANOUTS = [6, 4, 3]


def seed_batches(rng, count, size, n=N):
    return [rng.choice(n, size=size, replace=False) for _ in range(count)]


def assert_same(a: SampledSuperbatch, b: SampledSuperbatch) -> None:
    """Same batches (the edge layout may differ with the chunking)."""
    for k in ("node_ids", "node_ptr", "hop_nodes", "hop_edges", "keys", "label_index",
              "label_ptr", "num_pos"):
        assert np.array_equal(getattr(a, k), getattr(b, k)), k
    for i in range(len(a)):
        assert np.array_equal(a.edge_index(i), b.edge_index(i))


def check_batch(batch, seeds, indptr, indices, fanouts):
    n_id = batch.n_id
    L = len(fanouts)
    assert len(np.unique(n_id)) == len(n_id), "node ids are unique"
    assert np.array_equal(n_id[: batch.num_seeds], np.sort(seeds)), "seeds first, sorted"
    hn, he = batch.hop_nodes, batch.hop_edges
    for h in range(L + 1):
        lo = 0 if h == 0 else hn[h - 1]
        assert np.all(np.diff(n_id[lo:hn[h]]) > 0), "each hop's new nodes are sorted"
    src, dst = batch.edge_index
    for h in range(L):
        e0 = 0 if h == 0 else he[h - 1]
        s, d = src[e0:he[h]], dst[e0:he[h]]
        lo = 0 if h == 0 else hn[h - 1]
        assert np.all((d >= lo) & (d < hn[h])), "hop h+1 expands the nodes new at hop h"
        assert np.all(s < hn[h + 1])
        f = fanouts[h]
        for v_local in range(lo, hn[h]):
            v = n_id[v_local]
            nbrs = n_id[s[d == v_local]]
            true = indices[indptr[v]:indptr[v + 1]]
            want = len(true) if f < 0 else min(f, len(true))
            assert len(nbrs) == want, "fanout respected"
            assert len(np.unique(nbrs)) == len(nbrs), "no duplicate neighbours"
            assert np.all(np.isin(nbrs, true)), "every sampled edge exists"
    for l, (ns, nd) in enumerate(batch.sizes):
        ei = batch.layer_edge_index(l)
        assert ns == hn[L - l] and nd == hn[L - l - 1]
        assert ei.shape[1] == he[L - l - 1]
        assert ei[1].max(initial=-1) < nd and ei[0].max(initial=-1) < ns


@pytest.mark.parametrize("fanouts", [FANOUTS, [-1, 2], [1, 1, 1, 1]])
def test_batches_are_valid(fanouts):
    rng = np.random.default_rng(1)
    seeds = seed_batches(rng, 5, 40)
    sampler = NeighborSampler(INDPTR, INDICES, fanouts, seed=3)
    sb = sampler.sample(seeds, range(5))
    assert len(sb) == 5
    for b, s in zip(sb, seeds):
        check_batch(b, s, INDPTR, INDICES, fanouts)


def test_full_neighbourhood():
    rng = np.random.default_rng(2)
    seeds = seed_batches(rng, 2, 10)
    sb = NeighborSampler(INDPTR, INDICES, [-1, -1], seed=0).sample(seeds, [0, 1])
    for b, s in zip(sb, seeds):
        check_batch(b, s, INDPTR, INDICES, [-1, -1])
        assert b.hop_edges[0] == sum(INDPTR[v + 1] - INDPTR[v] for v in s)


@pytest.mark.parametrize("fanout", [5, 40])       # Floyd's algorithm, selection sampling
def test_uniform_choice_on_a_star(fanout):
    deg = 50
    indptr = np.array([0, deg] + [deg] * deg, np.int64)       # node 0 has in-neighbours 1..50
    indices = np.arange(1, deg + 1, dtype=np.int32)
    sampler = NeighborSampler(indptr, indices, [fanout], seed=11, chunk_batches=4000)
    trials = 4000
    sb = sampler.sample([np.array([0])] * trials, range(trials))
    counts = np.bincount(sb.node_ids[sb.node_ids > 0], minlength=deg + 1)[1:]
    assert counts.sum() == trials * fanout
    chi2 = stats.chisquare(counts)
    assert chi2.pvalue > 1e-3, (chi2, counts)


@pytest.mark.parametrize("d,k", [(7, 3), (34, 33)])     # Floyd's algorithm, selection sampling
def test_every_subset_equally_likely(d, k):
    """Not only each neighbour: each k-subset of a star's d neighbours is drawn uniformly."""
    from math import comb
    indptr = np.array([0, d] + [d] * d, np.int64)
    indices = np.arange(1, d + 1, dtype=np.int32)
    trials = 100 * comb(d, k)
    sb = NeighborSampler(indptr, indices, [k], seed=12, chunk_batches=trials).sample(
        [np.array([0])] * trials, range(trials))
    picked = sb.node_ids.reshape(trials, k + 1)[:, 1:].astype(np.int64)
    masks = np.bitwise_or.reduce(np.int64(1) << (picked - 1), axis=1)
    counts = np.unique(masks, return_counts=True)[1]
    assert len(counts) == comb(d, k)
    chi2 = stats.chisquare(counts)
    assert chi2.pvalue > 1e-3, (chi2, counts)


def _sample_in_child(threads: int, chunk: int, seeds) -> SampledSuperbatch:
    """Sample in a fresh interpreter started with NUMBA_NUM_THREADS = threads (for machines
    whose default thread count is lower)."""
    import os
    import pickle
    import subprocess
    import sys
    import tempfile
    code = ("import pickle, sys, numba; sys.path.insert(0, sys.argv[1]); "
            "from test_sampler import *; seeds = pickle.load(open(sys.argv[2], 'rb')); "
            f"assert numba.get_num_threads() == {threads}; "
            f"sb = NeighborSampler(INDPTR, INDICES, FANOUTS, seed=5, chunk_batches={chunk})"
            ".sample(seeds, range(len(seeds))); pickle.dump(sb, open(sys.argv[2], 'wb'))")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "io.pkl")
        with open(path, "wb") as f:
            pickle.dump(seeds, f)
        subprocess.run([sys.executable, "-c", code, os.path.dirname(__file__), path], check=True,
                       env=dict(os.environ, NUMBA_NUM_THREADS=str(threads)))
        with open(path, "rb") as f:
            return pickle.load(f)


def test_same_batches_with_1_and_2_threads_and_any_chunking():
    rng = np.random.default_rng(4)
    seeds = seed_batches(rng, 9, 60)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = NeighborSampler(INDPTR, INDICES, FANOUTS, seed=5, chunk_batches=1).sample(seeds, range(9))
    finally:
        numba.set_num_threads(before)
    if numba.config.NUMBA_NUM_THREADS >= 2:
        try:
            numba.set_num_threads(2)
            two = NeighborSampler(INDPTR, INDICES, FANOUTS, seed=5, chunk_batches=4).sample(
                seeds, range(9))
        finally:
            numba.set_num_threads(before)
    else:
        two = _sample_in_child(2, 4, seeds)
    assert_same(one, two)
    other = NeighborSampler(INDPTR, INDICES, FANOUTS, seed=6).sample(seeds, range(9))
    assert not np.array_equal(other.node_ids, one.node_ids)
    single = NeighborSampler(INDPTR, INDICES, FANOUTS, seed=5).sample_batch(seeds[3], key=3)
    assert np.array_equal(single.n_id, one[3].n_id)
    assert np.array_equal(single.edge_index, one[3].edge_index)


def test_indices_on_pmem_give_the_same_batches(tmp_path):
    """The PMem tier takes the same fetch path as the SSD tier, with and without the cache."""
    from tiered.tiers import pmemobj
    if not pmemobj.available():
        pytest.skip(str(pmemobj.unavailable_reason()))
    from tiered.tiers.pmem import PMemPool
    seeds = seed_batches(np.random.default_rng(6), 6, 50)
    ref = NeighborSampler(INDPTR, INDICES, FANOUTS, seed=9).sample(seeds, range(6))
    with PMemPool.create(tmp_path / "indices.pool", 32 << 20) as pool:
        pool.create_array("indices", INDICES.shape, INDICES.dtype, chunk_bytes=1 << 14)
        tier = pool.tier("indices")
        tier.load(INDICES)
        plain = NeighborSampler(INDPTR, tier, FANOUTS, seed=9)
        assert_same(ref, plain.sample(seeds, range(6)))
        assert plain.fetched_positions == plain.drawn_positions > 0
        cache = NeighborCache.build(tier, INDICES.nbytes // 3,
                                    page_degree_score(INDPTR, tier, FANOUTS[0]))
        cached = NeighborSampler(INDPTR, tier, FANOUTS, seed=9, neighbor_cache=cache)
        assert_same(ref, cached.sample(seeds, range(6)))
        assert cached.fetched_positions < cached.drawn_positions


def test_every_tier_and_the_neighbour_cache_give_the_same_batches(tmp_path):
    from tiered.format import read_array_layout
    ssd = pytest.importorskip("tiered.tiers.ssd")
    rng = np.random.default_rng(6)
    seeds = seed_batches(rng, 6, 50)
    ref = NeighborSampler(INDPTR, INDICES, FANOUTS, seed=9).sample(seeds, range(6))
    write_array(tmp_path, "indices", INDICES, chunk_bytes=1 << 14)
    layout = read_array_layout(tmp_path, "indices")
    with _quiet():
        tier = ssd.SSDTier(layout)
    with tier:
        plain = NeighborSampler(INDPTR, tier, FANOUTS, seed=9)
        tier.stats.reset()
        assert_same(ref, plain.sample(seeds, range(6)))
        assert plain.fetched_positions == plain.drawn_positions > 0
        uncached_bytes = tier.stats.bytes_read
        reads = page_reads(INDPTR, tier, FANOUTS, seeds[:3], [100, 101, 102])
        scores = {"page reads": reads, "degree": page_degree_score(INDPTR, tier, FANOUTS[0])}
        n_pages = -(-len(INDICES) * 4 // PAGE_BYTES)
        assert len(reads) == n_pages and reads.max() <= 2 * len(FANOUTS) and reads.sum() > 0
        for name, score in scores.items():
            budget = INDICES.nbytes // 3
            cache = NeighborCache.build(tier, budget, score)
            assert 0 < cache.nbytes <= budget, name
            top = np.argsort(-score, kind="stable")[: cache.num_cached]
            assert np.array_equal(cache.pages, np.sort(top))
            for r, q in enumerate(cache.pages):
                want = INDICES[q * 1024:(q + 1) * 1024]
                assert np.array_equal(cache.data[r * 1024: r * 1024 + len(want)], want)
            cached = NeighborSampler(INDPTR, tier, FANOUTS, seed=9, neighbor_cache=cache)
            tier.stats.reset()
            assert_same(ref, cached.sample(seeds, range(6)))
            assert cached.fetched_positions < cached.drawn_positions, name
            assert tier.stats.bytes_read < uncached_bytes, name


class _quiet:
    """Silence the one-line buffered-read warning of filesystems that refuse O_DIRECT."""

    def __enter__(self):
        import warnings
        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._w.__exit__(*exc)


def test_edge_seed_mode():
    rng = np.random.default_rng(8)
    src = INDICES[rng.integers(0, len(INDICES), 30)]
    dst = rng.integers(0, N, 30)
    edges = [np.stack([src[:20], dst[:20]], 1), np.stack([src[20:], dst[20:]], 1)]
    sampler = NeighborSampler(INDPTR, INDICES, [4, 2], seed=1)
    sb = sampler.sample_edges(edges, [7, 8], num_neg=3, neg_range=(1000, 2000))
    for b, e in zip(sb, edges):
        p = len(e)
        n_id = b.n_id
        li, y = b.edge_label_index, b.edge_label
        assert li.shape == (2, 4 * p) and y.tolist() == [1.0] * p + [0.0] * 3 * p
        assert np.array_equal(n_id[li[0, :p]], e[:, 0]) and np.array_equal(n_id[li[1, :p]], e[:, 1])
        assert np.array_equal(n_id[li[0, p:]], np.repeat(e[:, 0], 3))
        neg = n_id[li[1, p:]]
        assert np.all((neg >= 1000) & (neg < 2000))
        assert li.max() < b.num_seeds, "every endpoint is a seed"
        ends = np.unique(np.concatenate([e.ravel(), neg]))
        check_batch(b, ends, INDPTR, INDICES, [4, 2])
    again = sampler.sample_edges(edges, [7, 8], num_neg=3, neg_range=(1000, 2000))
    assert_same(sb, again)


def test_superbatch_roundtrip_and_conversions(tmp_path):
    rng = np.random.default_rng(9)
    sb = NeighborSampler(INDPTR, INDICES, FANOUTS, seed=2).sample(seed_batches(rng, 3, 30), range(3))
    sb.save(tmp_path / "sb.npz")
    assert_same(sb, SampledSuperbatch.load(tmp_path / "sb.npz"))
    b = sb[1]
    assert b.n_id.dtype == np.int64 and b.edge_index.dtype == np.int64
    blocks = b.blocks
    assert [(blk.num_src, blk.num_dst) for blk in blocks] == b.sizes
    assert blocks[0].edge_index.shape[1] == b.edge_index.shape[1]
    assert blocks[-1].num_dst == b.num_seeds
    n_id, adjs = b.to_pyg()
    assert n_id.tolist() == b.n_id.tolist()
    assert [a.size for a in adjs] == b.sizes
    for blk, adj in zip(blocks, adjs):
        assert blk.edge_index.equal(adj.edge_index)


def test_to_dgl():
    pytest.importorskip("dgl")
    b = NeighborSampler(INDPTR, INDICES, FANOUTS, seed=2).sample_batch(np.arange(10))
    blocks = b.to_dgl()
    assert [(x.num_src_nodes(), x.num_dst_nodes()) for x in blocks] == b.sizes


class _FakeBlock:
    """What dgl.create_block is given, kept for inspection."""

    def __init__(self, data, num_src_nodes, num_dst_nodes):
        self.src, self.dst = data
        self.num_src, self.num_dst = num_src_nodes, num_dst_nodes
        self.srcdata, self.dstdata = {}, {}


def test_to_dgl_blocks_without_dgl(monkeypatch):
    """The DGL conversion, checked against a stand-in dgl module: per layer (outermost first)
    the block's edges are this layer's global edges, destinations a prefix of the sources."""
    import sys
    import types
    fake = types.ModuleType("dgl")
    fake.NID = "_ID"
    fake.create_block = _FakeBlock
    monkeypatch.setitem(sys.modules, "dgl", fake)
    b = NeighborSampler(INDPTR, INDICES, FANOUTS, seed=2).sample_batch(np.arange(10))
    blocks = b.to_dgl()
    L = len(FANOUTS)
    assert len(blocks) == L
    for l, blk in enumerate(blocks):
        ns, nd = b.sizes[l]
        assert (blk.num_src, blk.num_dst) == (ns, nd)
        nid_src, nid_dst = blk.srcdata["_ID"].numpy(), blk.dstdata["_ID"].numpy()
        assert np.array_equal(nid_src, b.n_id[:ns]) and np.array_equal(nid_dst, nid_src[:nd])
        src, dst = blk.src.numpy(), blk.dst.numpy()
        assert src.max() < ns and dst.max() < nd
        for u, v in zip(nid_src[src], nid_dst[dst]):       # global edge u -> v exists
            assert u in INDICES[INDPTR[v]:INDPTR[v + 1]]
        hop = L - l              # the outermost block holds every hop's edges, the last one hop 1's
        assert len(src) == b.hop_edges[hop - 1]


def test_errors():
    s = NeighborSampler(INDPTR, INDICES, FANOUTS)
    with pytest.raises(ValueError, match="repeats seed"):
        s.sample([np.array([1, 2, 2])], [0])
    with pytest.raises(IndexError, match="out of range"):
        s.sample([np.array([N])], [0])
    with pytest.raises(ValueError, match="fanouts"):
        NeighborSampler(INDPTR, INDICES, [3, 0])
    with pytest.raises(ValueError, match="int32"):
        NeighborSampler(INDPTR, INDICES.astype(np.int64), [3])
    with pytest.raises(ValueError, match="entries"):
        NeighborSampler(INDPTR, INDICES[:-1], [3])
