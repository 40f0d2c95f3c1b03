"""The synthetic generators: deterministic for a seed, heavy-tailed, and learnable."""
from __future__ import annotations

import numba
import numpy as np
import pytest
import scipy.sparse as sp

from tiered import open_dataset, verify_dataset
from tiered.convert import ConvertOptions, generate_synthetic, generate_synthetic_links
from tiered.convert.cast import to_float16
from tiered.convert.hashing import Permutation
from tiered.convert.synthetic import RMAT_GRAPH500, SyntheticNodes, rmat_table


def opts(limit=1 << 30, **kw):
    return ConvertOptions(memory_limit=limit, progress=False, chunk_bytes=1 << 16, **kw)


def arrays(path):
    ds = open_dataset(path)
    assert verify_dataset(path) == []
    return ds, {name: ds.load(name) for name in ds.layouts}


def test_deterministic_for_a_seed_whatever_blocks_and_threads(tmp_path):
    kw = dict(nodes=3000, edges=30000, dim=8, classes=5, seed=42)
    generate_synthetic(tmp_path / "a", **kw, options=opts())
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        generate_synthetic(tmp_path / "b", **kw, options=opts(1 << 16))   # tiny blocks, 1 thread
    finally:
        numba.set_num_threads(threads)
    generate_synthetic(tmp_path / "c", **{**kw, "seed": 43}, options=opts())
    _, a = arrays(tmp_path / "a")
    _, b = arrays(tmp_path / "b")
    _, c = arrays(tmp_path / "c")
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert not np.array_equal(a["indices"], c["indices"])
    assert not np.array_equal(a["features"], c["features"])


def test_heavy_tailed_in_degree(tmp_path):
    s = generate_synthetic(tmp_path / "g", nodes=20000, edges=200000, dim=0, options=opts())
    ds, a = arrays(tmp_path / "g")
    deg = np.diff(a["indptr"])
    assert s.degree_max == deg.max() and s.num_edges == deg.sum() == ds.num_edges
    assert 0.8 * 200000 < ds.num_edges <= 200000          # duplicates and loops removed
    assert deg.max() > 30 * deg.mean()
    top = np.sort(deg)[::-1]
    assert top[: len(top) // 100].sum() > 0.15 * deg.sum()   # top 1% of nodes: >15% of edges
    # hubs are scattered over the id range, not packed at low ids
    hubs = np.argsort(deg)[-50:]
    assert hubs.min() < 20000 * 0.3 and hubs.max() > 20000 * 0.7
    # undirected by default
    m = sp.csc_matrix((np.ones(ds.num_edges), a["indices"], a["indptr"]), shape=(20000, 20000))
    assert (m != m.T).nnz == 0


def test_csc_is_scipys_of_the_generated_draws(tmp_path):
    model = SyntheticNodes(5000, 20000, 0, 16, 7, 0.8, 1.0, RMAT_GRAPH500)
    src, dst = (np.concatenate(x) for x in zip(*model.edge_blocks(3000)))
    generate_synthetic(tmp_path / "g", nodes=5000, edges=40000, dim=0, seed=7,
                       options=opts(1 << 16))
    _, a = arrays(tmp_path / "g")
    s, d = np.concatenate([src, dst]), np.concatenate([dst, src])
    keep = s != d
    m = sp.csc_matrix((np.ones(int(keep.sum())), (s[keep], d[keep])), shape=(5000, 5000))
    m.sort_indices()
    np.testing.assert_array_equal(a["indptr"], m.indptr)
    np.testing.assert_array_equal(a["indices"], m.indices)


def _nearest_centroid(x, y, train, test):
    classes = y.max() + 1
    cent = np.stack([x[train][y[train] == k].mean(0) for k in range(classes)])
    d = ((x[test][:, None, :] - cent[None]) ** 2).sum(-1)
    return float((d.argmin(1) == y[test]).mean())


def test_features_and_labels_are_learnable_and_neighbours_help(tmp_path):
    """Own features beat chance (an MLP can learn); adding the neighbour mean beats own
    features (a GraphSAGE beats the MLP): homophilous edges average the noise away."""
    classes = 8
    generate_synthetic(tmp_path / "g", nodes=20000, edges=400000, dim=32, classes=classes,
                       options=opts())
    ds, a = arrays(tmp_path / "g")
    x, y, ip, ix = a["features"].astype(np.float64), a["labels"], a["indptr"], a["indices"]
    assert np.bincount(y).min() > 0.9 * len(y) / classes          # balanced classes
    deg = np.diff(ip)
    mean = np.zeros_like(x)
    has = deg > 0
    mean[has] = np.add.reduceat(x[ix], ip[:-1][has], axis=0) / deg[has, None]
    train, test = ds.split("train"), np.setdiff1d(np.arange(len(y)), ds.split("train"))
    own = _nearest_centroid(x, y, train, test)
    sage = _nearest_centroid(np.hstack([x, mean]), y, train, test)
    same = float((y[ix] == np.repeat(y, deg)).mean())
    assert same > 0.7                                            # homophily of the edges
    assert own > 1 / classes + 0.2, own
    assert sage > own + 0.1, (own, sage)


def test_float16_features_are_the_rounded_float32_ones(tmp_path):
    kw = dict(nodes=500, edges=2000, dim=16, seed=3)
    generate_synthetic(tmp_path / "a", **kw, options=opts())
    generate_synthetic(tmp_path / "b", **kw, options=opts(feature_dtype="float16"))
    _, a = arrays(tmp_path / "a")
    ds, b = arrays(tmp_path / "b")
    assert ds.feature_dtype == np.float16
    np.testing.assert_array_equal(b["features"], a["features"].astype(np.float16))


def test_float16_cast_matches_numpy_bit_for_bit():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.integers(0, 2**32, 200000, dtype=np.uint64).astype(np.uint32)
                        .view(np.float32),
                        np.array([65504, 65519.99, 65520, 6e-8, 2.98e-8, 0, -0.0, np.inf],
                                 np.float32)])
    h, first = to_float16(x)
    with np.errstate(over="ignore"):
        ref = x.astype(np.float16)
    same = (h.view(np.uint16) == ref.view(np.uint16)) | (np.isnan(h) & np.isnan(ref))
    assert same.all()
    assert first == int(np.argmax(np.isinf(ref) & np.isfinite(x)))


def test_permutation_is_a_bijection_with_inverse():
    import numba as nb
    from tiered.convert.hashing import permute, unpermute

    @nb.njit
    def both(count, p):
        f = np.empty(count, np.int64)
        g = np.empty(count, np.int64)
        for i in range(count):
            f[i] = permute(i, p)
            g[i] = unpermute(f[i], p)
        return f, g
    for n in (1, 2, 3, 1000, 4097):
        f, g = both(n, Permutation(n, 5, 1).params())
        np.testing.assert_array_equal(np.sort(f), np.arange(n))
        np.testing.assert_array_equal(g, np.arange(n))


def test_rmat_table_probabilities():
    t = rmat_table((0.57, 0.19, 0.19)).astype(np.int64)
    row_top = (t >> 3) & 1
    col_top = (t >> 1) & 1
    assert abs((row_top == 0).mean() - 0.76) < 1e-3
    assert abs((col_top == 0).mean() - 0.76) < 1e-3


def test_synthetic_links(tmp_path):
    users, items = 3000, 1500
    s = generate_synthetic_links(tmp_path / "r", users=users, items=items, interactions=60000,
                                 groups=8, seed=1, options=opts(1 << 18))
    ds, a = arrays(tmp_path / "r")
    assert (ds.task, ds.num_users, ds.num_items) == ("link", users, items)
    tr, te = a["train_interactions"], a["test_interactions"]
    pairs = np.concatenate([tr, te])
    keys = pairs[:, 0] * items + pairs[:, 1]
    assert len(np.unique(keys)) == len(keys)                 # distinct, train/test disjoint
    assert abs(len(te) / len(pairs) - 0.2) < 0.02
    assert ds.num_edges == 2 * len(tr) == s.num_edges
    generate_synthetic_links(tmp_path / "r2", users=users, items=items, interactions=60000,
                             groups=8, seed=1, options=opts())
    _, a2 = arrays(tmp_path / "r2")
    np.testing.assert_array_equal(a2["train_interactions"], tr)

    # Collaborative structure: co-occurrence scores beat global popularity at recall@20.
    r = sp.csr_matrix((np.ones(len(tr)), (tr[:, 0], tr[:, 1])), shape=(users, items))
    scores = (r @ (r.T @ r)).toarray()
    popularity = np.asarray(r.sum(0)).ravel()
    test_users = np.unique(te[:, 0])
    truth = sp.csr_matrix((np.ones(len(te)), (te[:, 0], te[:, 1])), shape=(users, items))

    def recall(score):
        score = np.where(r[test_users].toarray() > 0, -np.inf, score)
        top = np.argsort(-score, axis=1)[:, :20]
        hits = np.take_along_axis(truth[test_users].toarray(), top, axis=1).sum(1)
        return float((hits / np.asarray(truth[test_users].sum(1)).ravel()).mean())
    cf = recall(scores[test_users])
    pop = recall(np.broadcast_to(popularity, (len(test_users), items)).astype(float))
    assert cf > pop * 1.2, (cf, pop)


@pytest.mark.parametrize("bad", [dict(classes=0), dict(homophily=1.5), dict(rmat=(0.9, 0.2, 0.1))])
def test_bad_parameters(tmp_path, bad):
    from tiered.convert import ConvertError
    with pytest.raises(ConvertError):
        generate_synthetic(tmp_path / "x", **{**dict(nodes=100, edges=100), **bad},
                           options=opts())
    assert not (tmp_path / "x").exists()
