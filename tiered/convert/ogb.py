"""`ogb`: an Open Graph Benchmark node-property-prediction directory, as downloaded.

Layout (csv variant): raw/edge.csv.gz, raw/num-node-list.csv.gz,
raw/num-edge-list.csv.gz, raw/node-feat.csv.gz, raw/node-label.csv.gz,
split/<name>/{train,valid,test}.csv.gz. The large datasets (ogbn-papers100M)
ship raw/data.npz (edge_index, node_feat, num_nodes_list) and
raw/node-label.npz instead; both are read in blocks.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .build import SplitSpec, build_node_dataset
from .edgelist import feed_text_edges, text_block_bytes
from .npy import feed_edge_index
from .npyio import NpyArray
from .csc import working_budget
from .options import ConvertError, ConvertOptions
from .output import ConvertSummary
from .sources import NpyRows, TextRows
from .textparse import KIND_ID, first_row_fields, iter_table

_SPLIT_FILES = {"train": "train", "val": "valid", "test": "test"}


def _find(directory: Path, stem: str) -> Path | None:
    for name in (f"{stem}.csv.gz", f"{stem}.csv"):
        if (directory / name).is_file():
            return directory / name
    return None


def _single_count(path: Path) -> int:
    values = np.concatenate([tb.ints[:, 0] for tb in iter_table(path, [KIND_ID])])
    if len(values) != 1:
        raise ConvertError(f"{path}: holds {len(values)} graphs; only single-graph "
                           f"node-property datasets are supported")
    return int(values[0])


def _split_dir(directory: Path, split_name: str | None) -> Path | None:
    root = directory / "split"
    if not root.is_dir():
        return None
    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    if split_name is None:
        if len(names) > 1:
            raise ConvertError(f"{root}: several splits {names}; choose one with --split-name")
        return root / names[0] if names else None
    if split_name not in names:
        raise ConvertError(f"{root}: no split {split_name!r} (has {names})")
    return root / split_name


def convert_ogb(directory: str | Path, output: str | Path, *, split_name: str | None = None,
                options: ConvertOptions | None = None) -> ConvertSummary:
    """Convert an OGB node-property-prediction dataset directory (ogbn-*).

    Edges are kept as OGB stores them (pass reverse_edges for the undirected
    graph most GNN baselines use); unlabelled nodes (nan labels) become -1.
    """
    opts = (options or ConvertOptions()).with_defaults()
    directory = Path(directory)
    raw = directory / "raw"
    if not raw.is_dir():
        raise ConvertError(f"{directory}: no raw/ directory; expected an OGB dataset directory "
                           f"(e.g. ogbn_arxiv/ with raw/ and split/)")
    edge_csv = _find(raw, "edge")
    data_npz = raw / "data.npz"
    if (raw / "relations").is_dir() or (edge_csv is None and not data_npz.is_file()):
        raise ConvertError(f"{raw}: neither edge.csv.gz nor data.npz found (heterogeneous "
                           f"datasets such as ogbn-mag are not supported)")
    if edge_csv is not None:
        count_file = _find(raw, "num-node-list")
        if count_file is None:
            raise ConvertError(f"{raw}: num-node-list.csv.gz is missing")
        num_nodes = _single_count(count_file)
        edge_count_file = _find(raw, "num-edge-list")
        num_edges = _single_count(edge_count_file) if edge_count_file else None
        feat_file = _find(raw, "node-feat")
        features = TextRows(feat_file, "features") if feat_file else None
        label_file = _find(raw, "node-label")
        if label_file is not None and first_row_fields(label_file) != 1:
            raise ConvertError(f"{label_file}: {first_row_fields(label_file)} labels per node; "
                               f"multi-task datasets (ogbn-proteins) are not supported")
        labels = TextRows(label_file, "labels") if label_file else None
        kinds = [KIND_ID, KIND_ID]
        if first_row_fields(edge_csv) != 2:
            raise ConvertError(f"{edge_csv}: expected 2 fields (src,dst) per line, found "
                               f"{first_row_fields(edge_csv)}")
        block = text_block_bytes(opts.memory_limit)

        def feed(c):
            feed_text_edges(c, edge_csv, kinds, False, False, block)
    else:
        keys = NpyArray.keys(data_npz)
        if "num_nodes_list" not in keys or "edge_index" not in keys:
            raise ConvertError(f"{data_npz}: expected arrays edge_index and num_nodes_list "
                               f"(has {keys})")
        counts = NpyArray(data_npz, "num_nodes_list").read().reshape(-1)
        if len(counts) != 1:
            raise ConvertError(f"{data_npz}: holds {len(counts)} graphs; only single-graph "
                               f"node-property datasets are supported")
        num_nodes = int(counts[0])
        edge_index = NpyArray(data_npz, "edge_index")
        num_edges = edge_index.shape[1] if edge_index.ndim == 2 else None
        features = (NpyRows(NpyArray(data_npz, "node_feat")) if "node_feat" in keys else None)
        label_npz = raw / "node-label.npz"
        labels = (NpyRows(NpyArray(label_npz, NpyArray.keys(label_npz)[0]))
                  if label_npz.is_file() else None)
        block = int(max(1024, min(1 << 23, working_budget(opts.memory_limit) // 64)))

        def feed(c):
            feed_edge_index(c, edge_index, None, block)
    split_dir = _split_dir(directory, split_name)
    sources = {}
    if split_dir is not None:
        for ours, theirs in _SPLIT_FILES.items():
            f = _find(split_dir, theirs)
            if f is not None:
                sources[ours] = TextRows(f, "ids")
    return build_node_dataset(
        output, fmt="ogb", source=str(directory.absolute()), opts=opts, feed_edges=feed,
        num_nodes=num_nodes, expected_edges=num_edges, features=features, labels=labels,
        splits=SplitSpec(sources=sources) if labels is not None else SplitSpec(),
        extra_attrs={"split_name": split_dir.name if split_dir else None})
