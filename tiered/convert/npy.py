"""`npy`: a numpy `edge_index` (2 x E) in .npy or .npz, with features, labels and splits."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from .build import build_node_dataset, make_splits
from .csc import EdgeCollector, working_budget
from .npyio import NpyArray
from .options import ConvertError, ConvertOptions
from .output import ConvertSummary
from .overlap import prefetch
from .sources import NpyRows, RowSource

# Names the arrays of an .npz may go by (PyG, OGB and DGL habits).
NPZ_KEYS = {
    "edge_index": ("edge_index",),
    "edge_weight": ("edge_weight",),
    "features": ("x", "features", "feat", "node_feat"),
    "labels": ("y", "labels", "label", "node_label"),
    "train": ("train_idx", "train_mask"),
    "val": ("val_idx", "valid_idx", "val_mask", "valid_mask"),
    "test": ("test_idx", "test_mask"),
    "num_nodes": ("num_nodes",),
}


def _find_key(keys: list[str], role: str) -> str | None:
    for k in NPZ_KEYS[role]:
        if k in keys:
            return k
    return None


def iter_edge_index(arr: NpyArray, block: int) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """(src, dst, first edge) blocks of a (2, E) edge_index (or (E, 2)), in storage order."""
    if arr.ndim != 2 or 2 not in arr.shape:
        raise ConvertError(f"{arr.name}: edge_index has shape {arr.shape}, expected (2, E)")
    if arr.dtype.kind not in "iu":
        raise ConvertError(f"{arr.name}: edge_index has dtype {arr.dtype}, expected integers")
    two_rows = arr.shape[0] == 2
    e = arr.shape[1] if two_rows else arr.shape[0]
    halves = two_rows != arr.fortran           # storage is [all src][all dst]
    if halves:
        for s, (src, dst) in zip(range(0, e, block),
                                 zip(arr.iter_flat(0, e, block), arr.iter_flat(e, 2 * e, block))):
            yield src.astype(np.int64), dst.astype(np.int64), s
    else:
        for s, pairs in zip(range(0, e, block), arr.iter_flat(0, 2 * e, 2 * block)):
            pairs = pairs.reshape(-1, 2)
            yield pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64), s


def num_edges_of(arr: NpyArray) -> int:
    return arr.shape[1] if arr.shape[0] == 2 else arr.shape[0]


def feed_edge_index(collector: EdgeCollector, arr: NpyArray, weights: NpyArray | None,
                    block: int) -> None:
    """Stream an edge_index (and optional per-edge weights) into the collector."""
    wblocks = weights.iter_flat(0, len(weights), block) if weights is not None else None
    for src, dst, start in prefetch(iter_edge_index(arr, block)):
        w = next(wblocks).astype(np.float32) if wblocks is not None else None
        collector.add(src, dst, w, where=lambda k, s=start: f"{arr.name}: edge {s + k}")


def convert_npy(input: str | Path, output: str | Path, *, features: RowSource | None = None,
                labels: RowSource | None = None, train: RowSource | None = None,
                val: RowSource | None = None, test: RowSource | None = None,
                num_nodes: int | None = None, num_classes: int | None = None,
                split_fractions: tuple[float, float, float] | None = None, seed: int = 0,
                options: ConvertOptions | None = None) -> ConvertSummary:
    """Convert numpy arrays into a node-task dataset.

    INPUT is an `edge_index` .npy (2 x E, or E x 2), or an .npz holding
    `edge_index` and optionally features (x/features/feat/node_feat), labels
    (y/labels/label/node_label), splits (train_idx/val_idx/test_idx or *_mask),
    `edge_weight` and `num_nodes`; sources passed as arguments take precedence.
    """
    opts = (options or ConvertOptions()).with_defaults()
    path = Path(input)
    if not path.is_file():
        raise ConvertError(f"{path}: no such file")
    weights = None
    if path.suffix.lower() == ".npz":
        keys = NpyArray.keys(path)
        key = _find_key(keys, "edge_index")
        if key is None:
            raise ConvertError(f"{path}: no 'edge_index' array (has {keys})")
        edge_index = NpyArray(path, key)

        def member(role: str) -> NpyRows | None:
            k = _find_key(keys, role)
            return NpyRows(NpyArray(path, k)) if k else None

        features = features or member("features")
        labels = labels or member("labels")
        train, val, test = train or member("train"), val or member("val"), test or member("test")
        if num_nodes is None and _find_key(keys, "num_nodes"):
            num_nodes = int(NpyArray(path, "num_nodes").read().reshape(-1)[0])
        if _find_key(keys, "edge_weight"):
            weights = NpyArray(path, "edge_weight")
    else:
        edge_index = NpyArray(path)
    e = num_edges_of(edge_index) if edge_index.ndim == 2 else 0
    if weights is not None and (weights.ndim != 1 or len(weights) != e):
        raise ConvertError(f"{weights.name}: edge weights of shape {weights.shape}, expected "
                           f"({e},) (one per edge)")
    block = int(max(1024, min(1 << 23, working_budget(opts.memory_limit) // 64)))
    return build_node_dataset(
        output, fmt="npy", source=str(path.absolute()), opts=opts,
        feed_edges=lambda c: feed_edge_index(c, edge_index, weights, block),
        num_nodes=num_nodes, expected_edges=e, weighted=weights is not None,
        features=features, labels=labels, num_classes=num_classes,
        splits=make_splits(train, val, test, split_fractions, seed, labels is not None))
