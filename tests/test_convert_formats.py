"""Every input format converts to exactly the CSC scipy.sparse builds, in and out of core."""
from __future__ import annotations

import gzip
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from tiered import open_dataset, verify_dataset
from tiered.convert import (ArrayRows, ConvertOptions, convert, convert_edgelist,
                            convert_lightgcn, convert_npy, convert_ogb, convert_planetoid,
                            open_rows)

REPO = Path(__file__).resolve().parent.parent
CORA = REPO / "datasets" / "cora"
GOWALLA = REPO.parent / "shared" / "datasets" / "gowalla"
TINY = 1 << 16


def opts(limit=1 << 30, chunk_bytes=1 << 14, **kw):
    return ConvertOptions(memory_limit=limit, progress=False, chunk_bytes=chunk_bytes, **kw)


def load(path):
    ds = open_dataset(path)
    assert verify_dataset(path) == []
    return ds, {name: ds.load(name) for name in ds.layouts}


def csc_reference(src, dst, n, reverse=False, loops=False, dedup=False):
    src, dst = np.asarray(src, np.int64), np.asarray(dst, np.int64)
    if reverse:
        src, dst = np.concatenate([src, dst]), np.concatenate([dst, src])
    if loops:
        keep = src != dst
        src, dst = src[keep], dst[keep]
    m = sp.csc_matrix((np.ones(len(src)), (src, dst)), shape=(n, n))
    m.sort_indices()
    if dedup:
        return m.indptr, m.indices
    indptr = np.concatenate([[0], np.cumsum(np.bincount(dst, minlength=n))])
    return indptr, np.repeat(m.indices, m.data.astype(np.int64))


def assert_csc(arrays, ref):
    np.testing.assert_array_equal(arrays["indptr"], ref[0])
    np.testing.assert_array_equal(arrays["indices"], ref[1])


def random_graph(seed=0, n=400, e=5000):
    rng = np.random.default_rng(seed)
    return (rng.zipf(1.5, e) % n).astype(np.int64), rng.integers(0, n, e), n


# ---------------------------------------------------------------------------- edgelist

@pytest.mark.parametrize("style", ["space", "csv", "tsv.gz"])
def test_edgelist_styles_match_scipy(tmp_path, style):
    src, dst, n = random_graph()
    sep = {"space": " ", "csv": ",", "tsv.gz": "\t"}[style]
    text = "# src dst\n" + "".join(f"{s}{sep}{d}\n" for s, d in zip(src, dst))
    path = tmp_path / f"edges.{style}"
    path.write_bytes(gzip.compress(text.encode()) if style.endswith("gz") else text.encode())
    convert_edgelist(path, tmp_path / "out", num_nodes=n, options=opts())
    ds, a = load(tmp_path / "out")
    assert ds.num_nodes == n and ds.num_edges == len(src)
    assert_csc(a, csc_reference(src, dst, n))


def test_edgelist_options_out_of_core_equals_in_memory(tmp_path):
    src, dst, n = random_graph(1, n=300, e=20000)
    path = tmp_path / "e.txt"
    np.savetxt(path, np.stack([src, dst], 1), fmt="%d")
    ref = csc_reference(src, dst, int(max(src.max(), dst.max())) + 1, True, True, True)
    for limit in (1 << 30, TINY):
        out = tmp_path / f"out{limit}"
        s = convert_edgelist(path, out, options=opts(limit, reverse_edges=True,
                                                     drop_self_loops=True, dedup=True))
        _, a = load(out)
        assert_csc(a, ref)
        assert s.num_edges == len(ref[1])


def test_edgelist_with_node_data_from_npy_and_random_split(tmp_path):
    src, dst, n = random_graph(2)
    n_all = n + 5                                     # isolated nodes at the end
    rng = np.random.default_rng(3)
    feats = rng.standard_normal((n_all, 8)).astype(np.float32)
    labels = rng.integers(0, 4, n_all)
    labels[::7] = -1
    np.save(tmp_path / "x.npy", feats)
    np.save(tmp_path / "y.npy", labels)
    (tmp_path / "e.csv").write_text("".join(f"{s},{d}\n" for s, d in zip(src, dst)))
    first_splits: list[np.ndarray] = []
    for limit in (1 << 30, TINY):
        out = tmp_path / f"out{limit}"
        convert_edgelist(tmp_path / "e.csv", out,
                         features=open_rows(tmp_path / "x.npy", "features"),
                         labels=open_rows(tmp_path / "y.npy", "labels"),
                         split_fractions=(0.5, 0.25, 0.25), seed=9,
                         options=opts(limit, feature_dtype="float16"))
        ds, a = load(out)
        assert ds.num_nodes == n_all and ds.num_classes == 4
        assert a["features"].dtype == np.float16
        np.testing.assert_array_equal(a["features"], feats.astype(np.float16))
        np.testing.assert_array_equal(a["labels"], labels)
        splits = [a[f"{s}_idx"] for s in ("train", "val", "test")]
        together = np.concatenate(splits)
        assert len(np.unique(together)) == len(together) == int((labels >= 0).sum())
        assert (labels[together] >= 0).all()
        assert abs(len(splits[0]) - 0.5 * len(together)) < 0.1 * len(together)
        if limit == TINY:
            for s, first in zip(splits, first_splits):
                np.testing.assert_array_equal(s, first)    # same seed, same split
        first_splits = splits


def test_edgelist_text_node_data_split_files_weights(tmp_path):
    (tmp_path / "e.tsv").write_text("0\t1\t0.5\n1\t2\t2\n2\t0\t1.25\n0\t1\t1\n")
    (tmp_path / "x.csv").write_text("1,2\n3,4\n5,6e-1\n")
    (tmp_path / "y.txt").write_text("0\n1\nnan\n")
    (tmp_path / "train.txt").write_text("0\n")
    (tmp_path / "test.txt").write_text("1\n")
    convert_edgelist(tmp_path / "e.tsv", tmp_path / "out", weights=True,
                     features=open_rows(tmp_path / "x.csv", "features"),
                     labels=open_rows(tmp_path / "y.txt", "labels"),
                     train=open_rows(tmp_path / "train.txt", "ids"),
                     test=open_rows(tmp_path / "test.txt", "ids"), options=opts(dedup=True))
    ds, a = load(tmp_path / "out")
    np.testing.assert_array_equal(a["indptr"], [0, 1, 2, 3])
    np.testing.assert_array_equal(a["indices"], [2, 0, 1])
    np.testing.assert_allclose(a["edge_weight"], [1.25, 1.5, 2.0])     # 0->1 merged: sum
    np.testing.assert_allclose(a["features"], [[1, 2], [3, 4], [5, 0.6]])
    np.testing.assert_array_equal(a["labels"], [0, 1, -1])
    assert ds.splits == ["train", "test"]
    np.testing.assert_array_equal(a["train_idx"], [0])


def test_edgelist_compact_ids_select_feature_rows(tmp_path):
    (tmp_path / "e.txt").write_text("10 30\n30 50\n50 10\n")
    feats = np.arange(60 * 2, dtype=np.float32).reshape(60, 2)
    np.save(tmp_path / "x.npy", feats)
    convert_edgelist(tmp_path / "e.txt", tmp_path / "out",
                     features=open_rows(tmp_path / "x.npy", "features"),
                     options=opts(compact_ids=True))
    ds, a = load(tmp_path / "out")
    np.testing.assert_array_equal(a["node_ids"], [10, 30, 50])
    np.testing.assert_array_equal(a["features"], feats[[10, 30, 50]])
    assert_csc(a, csc_reference([0, 1, 2], [1, 2, 0], 3))


# ---------------------------------------------------------------------------- npy

@pytest.mark.parametrize("layout", ["npy", "npz", "npz-compressed", "npz-E2"])
def test_npy_layouts(tmp_path, layout):
    src, dst, n = random_graph(4)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((n, 3)).astype(np.float64)
    y = rng.integers(0, 3, n)
    train_mask = np.zeros(n, bool)
    train_mask[:50] = True
    ei = np.stack([src, dst]).astype(np.int32)
    if layout == "npy":
        np.save(tmp_path / "ei.npy", ei)
        inp = tmp_path / "ei.npy"
    else:
        save = np.savez_compressed if layout == "npz-compressed" else np.savez
        inp = tmp_path / "g.npz"
        save(inp, edge_index=ei.T.copy() if layout == "npz-E2" else ei, x=x, y=y,
             train_mask=train_mask, test_idx=np.arange(100, 150), num_nodes=np.array(n))
    convert_npy(inp, tmp_path / "out", options=opts(TINY))
    ds, a = load(tmp_path / "out")
    assert_csc(a, csc_reference(src, dst, n))
    if layout != "npy":
        np.testing.assert_array_equal(a["features"], x.astype(np.float32))
        np.testing.assert_array_equal(a["labels"], y)
        np.testing.assert_array_equal(a["train_idx"], np.arange(50))
        assert ds.splits == ["train", "test"]


# ---------------------------------------------------------------------------- ogb

def _gz(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode()))


def test_ogb_csv_layout(tmp_path):
    src, dst, n = random_graph(6, n=120, e=900)
    root = tmp_path / "ogbn_toy"
    _gz(root / "raw/edge.csv.gz", "".join(f"{s},{d}\n" for s, d in zip(src, dst)))
    _gz(root / "raw/num-node-list.csv.gz", f"{n}\n")
    _gz(root / "raw/num-edge-list.csv.gz", f"{len(src)}\n")
    x = np.round(np.random.default_rng(7).standard_normal((n, 4)), 4)
    _gz(root / "raw/node-feat.csv.gz", "".join(",".join(map(str, r)) + "\n" for r in x))
    y = np.arange(n) % 5
    _gz(root / "raw/node-label.csv.gz", "".join("nan\n" if i == 3 else f"{v}\n"
                                                for i, v in enumerate(y)))
    for name, ids in (("train", range(0, 60)), ("valid", range(60, 90)), ("test", range(90, 120))):
        _gz(root / f"split/time/{name}.csv.gz", "".join(f"{i}\n" for i in ids if i != 3))
    s = convert("ogb", root, tmp_path / "out", options=opts(TINY, reverse_edges=True))
    ds, a = load(tmp_path / "out")
    assert_csc(a, csc_reference(src, dst, n, reverse=True))
    np.testing.assert_allclose(a["features"], x.astype(np.float32))
    assert a["labels"][3] == -1 and (np.delete(a["labels"], 3) == np.delete(y, 3)).all()
    assert ds.splits == ["train", "val", "test"] and len(a["val_idx"]) == 30
    assert s.split_sizes == {"train": 59, "val": 30, "test": 30}


def test_ogb_npz_layout(tmp_path):
    src, dst, n = random_graph(8, n=100, e=700)
    raw = tmp_path / "ogbn_big" / "raw"
    raw.mkdir(parents=True)
    x = np.random.default_rng(9).standard_normal((n, 2)).astype(np.float32)
    np.savez_compressed(raw / "data.npz", edge_index=np.stack([src, dst]), node_feat=x,
                        num_nodes_list=np.array([n]), num_edges_list=np.array([len(src)]))
    y = (np.arange(n) % 3).astype(np.float64)[:, None]
    y[5] = np.nan
    np.savez_compressed(raw / "node-label.npz", node_label=y)
    _gz(tmp_path / "ogbn_big/split/time/train.csv.gz", "0\n1\n2\n")
    convert_ogb(tmp_path / "ogbn_big", tmp_path / "out", options=opts())
    ds, a = load(tmp_path / "out")
    assert_csc(a, csc_reference(src, dst, n))
    np.testing.assert_array_equal(a["features"], x)
    assert a["labels"][5] == -1 and a["labels"][4] == 1
    np.testing.assert_array_equal(a["train_idx"], [0, 1, 2])


# ---------------------------------------------------------------------------- planetoid

def kipf_reference(directory, name):
    """What Kipf & Welling's load_data and PyG's Planetoid loader build."""
    objs = {}
    for p in ("x", "y", "tx", "ty", "allx", "ally", "graph"):
        with open(directory / f"ind.{name}.{p}", "rb") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)   # scipy.sparse.csr paths
            objs[p] = pickle.load(f, encoding="latin1")
    test_index = np.loadtxt(directory / f"ind.{name}.test.index", dtype=np.int64)
    test_sorted = np.sort(test_index)
    full = np.arange(test_sorted[0], test_sorted[-1] + 1)
    tx = sp.lil_matrix((len(full), objs["tx"].shape[1]))
    tx[test_sorted - test_sorted[0], :] = objs["tx"]
    ty = np.zeros((len(full), objs["ty"].shape[1]))
    ty[test_sorted - test_sorted[0], :] = objs["ty"]
    features = sp.vstack([objs["allx"], tx]).tolil()
    features[test_index, :] = features[test_sorted, :]
    labels = np.vstack([objs["ally"], ty])
    labels[test_index, :] = labels[test_sorted, :]
    n = features.shape[0]
    src = [k for k, vs in objs["graph"].items() for _ in vs]
    dst = [v for vs in objs["graph"].values() for v in vs]
    return features.toarray(), labels, test_sorted, len(objs["y"]), csc_reference(
        src, dst, n, reverse=True, loops=True, dedup=True)


def test_planetoid_cora(tmp_path):
    s = convert_planetoid(CORA, tmp_path / "cora", options=opts(TINY))
    ds, a = load(tmp_path / "cora")
    assert (ds.num_nodes, ds.num_edges, ds.feature_dim, ds.num_classes) == (2708, 10556, 1433, 7)
    assert (len(a["train_idx"]), len(a["val_idx"]), len(a["test_idx"])) == (140, 500, 1000)
    feats, onehot, test_sorted, n_train, ref = kipf_reference(CORA, "cora")
    assert_csc(a, ref)
    np.testing.assert_array_equal(a["features"], feats.astype(np.float32))
    np.testing.assert_array_equal(a["labels"], onehot.argmax(1))
    np.testing.assert_array_equal(a["train_idx"], np.arange(140))
    np.testing.assert_array_equal(a["val_idx"], np.arange(140, 640))
    np.testing.assert_array_equal(a["test_idx"], test_sorted)
    assert s.num_edges == 10556 and ds.attrs["name"] == "cora"


def test_planetoid_test_index_gaps_are_padded(tmp_path):
    """CiteSeer-style: test ids with gaps; the missing nodes get zero features, label -1."""
    rng = np.random.default_rng(10)
    d, c = 6, 3
    allx = sp.csr_matrix(rng.integers(0, 2, (8, d)).astype(np.float32))
    ally = np.eye(c)[rng.integers(0, c, 8)]
    test_index = np.array([12, 8, 10, 13])                     # 9 and 11 are missing
    tx = sp.csr_matrix(rng.integers(0, 2, (4, d)).astype(np.float32))
    ty = np.eye(c)[rng.integers(0, c, 4)]
    graph = {i: [(i + 1) % 14, (i * 3) % 14] for i in range(14)}
    for part, obj in dict(x=allx[:2], y=ally[:2], allx=allx, ally=ally, tx=tx, ty=ty,
                          graph=graph).items():
        with open(tmp_path / f"ind.toy.{part}", "wb") as f:
            pickle.dump(obj, f, protocol=2)
    (tmp_path / "ind.toy.test.index").write_text("\n".join(map(str, test_index)) + "\n")
    convert_planetoid(tmp_path, tmp_path / "out", options=opts())
    ds, a = load(tmp_path / "out")
    feats, onehot, test_sorted, _, ref = kipf_reference(tmp_path, "toy")
    assert ds.num_nodes == 14
    assert_csc(a, ref)
    np.testing.assert_array_equal(a["features"], feats.astype(np.float32))
    assert (a["features"][[9, 11]] == 0).all()
    np.testing.assert_array_equal(a["labels"][[9, 11]], [-1, -1])
    np.testing.assert_array_equal(np.delete(a["labels"], [9, 11]),
                                  np.delete(onehot.argmax(1), [9, 11]))
    np.testing.assert_array_equal(a["test_idx"], [8, 10, 12, 13])
    np.testing.assert_array_equal(a["val_idx"], np.arange(2, 8))


def test_planetoid_rejects_code_in_pickles(tmp_path):
    for part in ("x", "y", "tx", "ty", "allx", "ally", "graph"):
        (tmp_path / f"ind.evil.{part}").write_bytes(pickle.dumps(ArrayRows, protocol=2))
    (tmp_path / "ind.evil.test.index").write_text("1\n")
    with pytest.raises(Exception, match="not allowed"):
        convert_planetoid(tmp_path, tmp_path / "out", options=opts())


# ---------------------------------------------------------------------------- lightgcn

def test_lightgcn_small(tmp_path):
    (tmp_path / "train.txt").write_text("0 1 2\n1 0\n2 2 2 3\n")
    (tmp_path / "test.txt").write_text("0 3\n1\n2 0\n")
    s = convert_lightgcn(tmp_path, tmp_path / "out", options=opts(TINY))
    ds, a = load(tmp_path / "out")
    assert (ds.task, ds.num_users, ds.num_items) == ("link", 3, 4)
    np.testing.assert_array_equal(a["train_interactions"],
                                  [[0, 1], [0, 2], [1, 0], [2, 2], [2, 2], [2, 3]])
    np.testing.assert_array_equal(a["test_interactions"], [[0, 3], [2, 0]])
    u = np.array([0, 0, 1, 2, 2, 2])
    i = np.array([1, 2, 0, 2, 2, 3]) + 3
    assert_csc(a, csc_reference(u, i, 7, reverse=True, dedup=True))
    assert s.extra == {"users": 3, "items": 4}


@pytest.mark.skipif(not GOWALLA.is_dir(), reason="../shared/datasets/gowalla not present")
def test_lightgcn_gowalla(tmp_path):
    s = convert_lightgcn(GOWALLA, tmp_path / "gowalla", train="train_full_lightgcn.txt",
                         options=opts(chunk_bytes=1 << 30))
    ds, a = load(tmp_path / "gowalla")
    assert (ds.num_users, ds.num_items) == (29858, 40981)
    assert len(a["train_interactions"]) == 810128
    assert len(a["test_interactions"]) == 217242
    assert ds.num_edges == 2 * 810128 == s.num_edges
