"""Test helpers: a small learnable node-classification dataset on disk, and short training runs."""
from __future__ import annotations

import numpy as np

from tiered import write_array, write_group_metadata
from tiered.train import Trainer, make_config


def make_node_dataset(root, n=2000, avg_deg=8, dim=16, classes=4, train=600, seed=0,
                      chunk_bytes=1 << 14):
    """Labels come from a random linear map of features smoothed over the graph, so a GNN
    learns them; features span several chunk files (chunk_bytes) to exercise the SSD reader."""
    rng = np.random.default_rng(seed)
    e = n * avg_deg
    dst = np.sort(rng.integers(0, n, e))
    src = rng.integers(0, n, e)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(dst, minlength=n))]).astype(np.int64)
    feats = rng.standard_normal((n, dim)).astype(np.float32)
    smooth = feats.copy()
    np.add.at(smooth, dst, feats[src])
    labels = (smooth @ rng.standard_normal((dim, classes))).argmax(1).astype(np.int64)
    perm = rng.permutation(n)
    val, test = (n - train) // 2, n - train - (n - train) // 2
    arrays = dict(indptr=indptr, indices=src.astype(np.int32), features=feats, labels=labels,
                  train_idx=np.sort(perm[:train]), val_idx=np.sort(perm[train:train + val]),
                  test_idx=np.sort(perm[train + val:train + val + test]))
    write_node_arrays(root, arrays, classes, chunk_bytes)
    return arrays


def write_node_arrays(root, arrays: dict, num_classes: int, chunk_bytes: int) -> None:
    """Write a node-classification dataset's arrays (indptr, indices, float32 features, labels,
    train/val/test ids) and the group attributes that describe them."""
    for name, a in arrays.items():
        write_array(root, name, a, chunk_bytes=chunk_bytes)
    n, dim = arrays["features"].shape
    write_group_metadata(root, dict(format="tiered", format_version=1, num_nodes=n,
                                    num_edges=len(arrays["indices"]), feature_dim=dim,
                                    feature_dtype="float32", num_classes=num_classes,
                                    task="node", splits=["train", "val", "test"]))


def cfg(ds, **kw):
    """A short training run's settings on dataset `ds` (2 epochs of 10 batches)."""
    base = dict(dataset=ds, model="sage", fanouts=[5, 5], batch_size=64, epochs=2, hidden=32,
                lr=0.01, superbatch=4, progress=False, seed=3)
    base.update(kw)
    return make_config(**base)


def run(c, model=None) -> Trainer:
    """Train with settings `c`; the finished Trainer (loader closed)."""
    tr = Trainer(c, model=model)
    try:
        tr.fit()
    finally:
        tr.loader.close()
    return tr
