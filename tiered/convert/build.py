"""The conversion pipeline shared by the formats: edges -> CSC, then features, labels and
splits, each streamed in blocks into the temporary output, then verified and committed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from tqdm import tqdm

from .. import __version__
from ..format import (FORMAT_NAME, FORMAT_VERSION, SPLITS, ArrayLayout, ArrayWriter,
                      choose_chunk_rows, write_array)
from .cast import to_float16
from .csc import CSCStats, EdgeCollector, index_dtype, working_budget, write_csc
from .hashing import stream_key, uniform_block
from .options import ConvertError, ConvertOptions
from .output import (ConvertSummary, OutputDir, ScratchArray, SpaceNeed, Stages, array_bytes,
                     peak_rss)
from .overlap import WriteBehind, prefetch
from .sources import RowSource, Where

_SPLIT_STREAM = 1          # hash stream of the random node split
_FLOAT16_MAX = 65504.0


@dataclass
class SplitSpec:
    """Where train/val/test node ids come from: id sources (ids or boolean masks), or a
    seeded random split of the labelled nodes with the given fractions."""

    sources: dict[str, RowSource] = field(default_factory=dict)
    fractions: tuple[float, float, float] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in self.sources:
            if name not in SPLITS:
                raise ConvertError(f"unknown split {name!r} (known: {SPLITS})")
        if self.fractions is not None:
            if self.sources:
                raise ConvertError("give split files or random split fractions, not both")
            f = tuple(float(x) for x in self.fractions)
            if len(f) != 3 or min(f) < 0 or sum(f) > 1 + 1e-9:
                raise ConvertError(f"split fractions {self.fractions}: expected three "
                                   f"non-negative numbers (train, val, test) summing to <= 1")
            self.fractions = f

    @property
    def names(self) -> list[str]:
        if self.fractions is not None:
            return [s for s, f in zip(SPLITS, self.fractions) if f > 0]
        return [s for s in SPLITS if s in self.sources]


DEFAULT_SPLIT = (0.6, 0.2, 0.2)


def make_splits(train: RowSource | None = None, val: RowSource | None = None,
                test: RowSource | None = None, fractions: tuple | None = None, seed: int = 0,
                has_labels: bool = True) -> SplitSpec:
    """Split files if any are given, else a random split (DEFAULT_SPLIT unless `fractions`)
    of the labelled nodes; no split without labels."""
    sources = {k: v for k, v in (("train", train), ("val", val), ("test", test)) if v is not None}
    if sources:
        return SplitSpec(sources=sources, fractions=fractions, seed=seed)
    if not has_labels:
        return SplitSpec()
    return SplitSpec(fractions=fractions or DEFAULT_SPLIT, seed=seed)


def parse_fractions(text: str) -> tuple[float, float, float]:
    """'0.6,0.2,0.2' -> (0.6, 0.2, 0.2)."""
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise ConvertError(f"split fractions {text!r}: expected e.g. 0.6,0.2,0.2") from None
    if len(parts) != 3:
        raise ConvertError(f"split fractions {text!r}: expected three numbers (train,val,test)")
    return parts


# ---------------------------------------------------------------------------- node rows

def _rows_for_nodes(blocks: Iterator[tuple[np.ndarray, Where]], node_ids: np.ndarray | None,
                    name: str) -> Iterator[tuple[np.ndarray, Where]]:
    """The source rows of the dataset's nodes: all rows, or (compacted ids) rows node_ids."""
    if node_ids is None:
        yield from blocks
        return
    start = taken = 0
    for block, where in blocks:
        stop = start + len(block)
        hi = int(np.searchsorted(node_ids, stop))
        sel = node_ids[taken:hi] - start
        yield block[sel], (lambda k, sel=sel, where=where: where(int(sel[k])))
        taken, start = hi, stop
    if taken < len(node_ids):
        raise ConvertError(f"{name}: has {start} rows, but node id {int(node_ids[taken])} "
                           f"needs row {int(node_ids[taken])}")


def _check_rows(name: str, what: str, rows: int | None, num_nodes: int,
                node_ids: np.ndarray | None) -> None:
    if node_ids is None and rows is not None and rows != num_nodes:
        raise ConvertError(f"{name}: {rows:,} {what} rows, expected {num_nodes:,} "
                           f"(one per node; the graph has {num_nodes:,} nodes)")


def write_features(root: Path, source: RowSource, num_nodes: int, node_ids: np.ndarray | None,
                   dtype: str | None, chunk_bytes: int, budget: int, progress: bool
                   ) -> tuple[int, str]:
    """Stream the node features into `features`; returns (dim, dtype name)."""
    if len(source.row_shape) != 1:
        raise ConvertError(f"{source.name}: features must be 2-D (nodes x dims), found rows "
                           f"of shape {source.row_shape}")
    if source.dtype.kind not in "fiub":
        raise ConvertError(f"{source.name}: features have dtype {source.dtype}, expected numbers")
    _check_rows(source.name, "feature", source.num_rows, num_nodes, node_ids)
    dim = source.row_shape[0]
    out_dtype = np.dtype(dtype or ("float16" if source.dtype == np.float16 else "float32"))
    block_rows = max(1, budget // 8 // max(1, dim * 16))
    rows = 0
    with ArrayWriter(root, "features", (num_nodes, dim), out_dtype, chunk_bytes) as writer, \
            WriteBehind(writer.write) as w, \
            tqdm(total=num_nodes, unit="row", unit_scale=True, mininterval=0.5,
                 disable=not progress, desc="features") as bar:
        for block, where in _rows_for_nodes(prefetch(source.blocks(block_rows)), node_ids,
                                            source.name):
            if rows + len(block) > num_nodes:
                raise ConvertError(f"{where(num_nodes - rows)}: more feature rows than the "
                                   f"{num_nodes:,} nodes of the graph (one row per node)")
            if out_dtype == np.float16:
                out, k = to_float16(block)
                if k >= 0:
                    value = block.reshape(-1)[k].item()
                    raise ConvertError(f"{where(k // dim)}: feature value {value:g} overflows "
                                       f"float16 (largest {_FLOAT16_MAX:g}); keep float32")
            else:
                out = block.astype(out_dtype)
            w.write(out)
            rows += len(block)
            bar.update(len(block))
        if rows != num_nodes:
            raise ConvertError(f"{source.name}: {rows:,} feature rows, expected {num_nodes:,} "
                               f"(one per node; the graph has {num_nodes:,} nodes)")
    return dim, out_dtype.name


def _labels_block(block: np.ndarray, where: Where, num_classes: int | None) -> np.ndarray:
    """Labels as int64 with -1 for unlabelled; checks integrality and range."""
    if block.ndim == 2 and block.shape[1] == 1:
        block = block[:, 0]
    if block.ndim != 1:
        raise ConvertError(f"{where(0)}: expected one label per node, found rows of shape "
                           f"{block.shape[1:]}")
    if block.dtype.kind == "f":
        missing = np.isnan(block)
        bad = ~missing & (block != np.floor(block))
        if bad.any():
            k = int(np.argmax(bad))
            raise ConvertError(f"{where(k)}: label {block[k].item()!r} is not an integer")
        labels = np.where(missing, -1, block).astype(np.int64)
    elif block.dtype.kind in "iub":
        labels = block.astype(np.int64)
    else:
        raise ConvertError(f"{where(0)}: labels have dtype {block.dtype}, expected integers")
    bad = labels < -1
    if bad.any():
        k = int(np.argmax(bad))
        raise ConvertError(f"{where(k)}: label {labels[k]} is negative (classes are 0..C-1; "
                           f"-1 or nan marks an unlabelled node)")
    if num_classes is not None:
        bad = labels >= num_classes
        if bad.any():
            k = int(np.argmax(bad))
            raise ConvertError(f"{where(k)}: label {labels[k]} out of range [0, {num_classes})")
    return labels


def _read_labels_at(layout: ArrayLayout, ids: np.ndarray) -> np.ndarray:
    """labels[ids] read from the written chunk files (ids sorted)."""
    out = np.empty(len(ids), np.int64)
    for c, m in enumerate(layout.memmap_chunks()):
        lo, hi = np.searchsorted(ids, [c * layout.chunk_rows, (c + 1) * layout.chunk_rows])
        out[lo:hi] = m[ids[lo:hi] - c * layout.chunk_rows]
        del m
    return out


def _explicit_split(source: RowSource, num_nodes: int, node_ids: np.ndarray | None
                    ) -> np.ndarray:
    """Node ids of a split given as ids or a boolean mask, mapped and range-checked."""
    if source.dtype == np.bool_:
        mask = source.read_all()
        expected = num_nodes if node_ids is None else None
        if mask.ndim != 1 or (expected is not None and len(mask) != expected):
            raise ConvertError(f"{source.name}: boolean split mask of shape {mask.shape}, "
                               f"expected ({num_nodes},)")
        ids = np.flatnonzero(mask)
        blocks = [(ids, lambda k, ids=ids: f"{source.name}: row {int(ids[k])}")]
    else:
        if source.dtype.kind not in "iu":
            raise ConvertError(f"{source.name}: split ids have dtype {source.dtype}, expected "
                               f"integers or booleans")
        blocks = list(source.blocks(1 << 22))
    parts = []
    for ids, where in blocks:
        ids = ids.astype(np.int64).reshape(-1)
        if node_ids is not None:
            pos = np.searchsorted(node_ids, ids)
            bad = (pos >= len(node_ids)) | (node_ids[np.minimum(pos, len(node_ids) - 1)] != ids)
            if bad.any():
                k = int(np.argmax(bad))
                raise ConvertError(f"{where(k)}: node {ids[k]} is not in the graph (ids are "
                                   f"compacted to the nodes that have edges)")
            ids = pos
        bad = (ids < 0) | (ids >= num_nodes)
        if bad.any():
            k = int(np.argmax(bad))
            raise ConvertError(f"{where(k)}: node id {ids[k]} out of range [0, {num_nodes})")
        parts.append(ids)
    ids = np.concatenate(parts) if parts else np.empty(0, np.int64)
    uniq = np.unique(ids)
    if len(uniq) != len(ids):
        raise ConvertError(f"{source.name}: repeats {len(ids) - len(uniq)} node ids")
    return uniq


def write_labels_and_splits(root: Path, labels: RowSource | None, splits: SplitSpec,
                            num_nodes: int, node_ids: np.ndarray | None,
                            num_classes: int | None, scratch: Path, chunk_bytes: int,
                            budget: int, progress: bool) -> tuple[int, dict[str, int]]:
    """Stream `labels` and write the split arrays; returns (num_classes, split sizes)."""
    if labels is None and splits.sources:
        raise ConvertError("split files were given without labels; split nodes must be "
                           "labelled")
    block_rows = max(1024, budget // 64)
    random_split = labels is not None and splits.fractions is not None
    picked = {s: ScratchArray(scratch / f"{s}.bin", np.int64) for s in splits.names} \
        if random_split else {}
    if random_split:
        key = stream_key(splits.seed, _SPLIT_STREAM)
        edges = np.cumsum(splits.fractions)
    max_label = -1
    rows = 0
    with ArrayWriter(root, "labels", (num_nodes,), np.int64, chunk_bytes) as w:
        if labels is None:
            for s in range(0, num_nodes, block_rows):
                w.write(np.full(min(block_rows, num_nodes - s), -1, np.int64))
        else:
            _check_rows(labels.name, "label", labels.num_rows, num_nodes, node_ids)
            for block, where in _rows_for_nodes(prefetch(labels.blocks(block_rows)), node_ids,
                                                labels.name):
                if rows + len(block) > num_nodes:
                    raise ConvertError(f"{where(num_nodes - rows)}: more label rows than the "
                                       f"{num_nodes:,} nodes of the graph (one per node)")
                lab = _labels_block(block, where, num_classes)
                if len(lab):
                    max_label = max(max_label, int(lab.max()))
                w.write(lab)
                if random_split:
                    u = uniform_block(key, rows, len(lab))
                    which = np.searchsorted(edges, u, side="right")
                    ids = np.arange(rows, rows + len(lab), dtype=np.int64)
                    for k, name in enumerate(SPLITS):
                        if name in picked:
                            picked[name].write(ids[(which == k) & (lab >= 0)])
                rows += len(lab)
            if rows != num_nodes:
                raise ConvertError(f"{labels.name}: {rows:,} label rows, expected "
                                   f"{num_nodes:,} (one per node; the graph has "
                                   f"{num_nodes:,} nodes)")
    classes = num_classes if num_classes is not None else max_label + 1
    sizes: dict[str, int] = {}
    if random_split:
        for name, arr in picked.items():
            sizes[name] = arr.length
            arr.copy_into(root, f"{name}_idx", chunk_bytes, budget // 8)
    elif splits.sources:
        layout = w.layout
        seen: list[tuple[str, np.ndarray]] = []
        for name in splits.names:
            src = splits.sources[name]
            ids = _explicit_split(src, num_nodes, node_ids)
            unlabelled = _read_labels_at(layout, ids) < 0
            if unlabelled.any():
                raise ConvertError(f"{src.name}: split {name!r} holds {int(unlabelled.sum())} "
                                   f"unlabelled nodes (first: node {int(ids[unlabelled][0])})")
            for prev_name, prev in seen:
                common = np.intersect1d(prev, ids)
                if len(common):
                    raise ConvertError(f"{src.name}: split {name!r} shares {len(common)} nodes "
                                       f"with split {prev_name!r} (first: node {common[0]})")
            seen.append((name, ids))
            sizes[name] = len(ids)
            write_array(root, f"{name}_idx", ids, chunk_bytes)
    return classes, sizes


# ---------------------------------------------------------------------------- the pipeline

def padded_bytes(rows: int, row_bytes: int, chunk_bytes: int) -> int:
    """Disk bytes of an array: the format pads the last chunk file to full size."""
    if rows == 0 or row_bytes == 0:
        return 0
    chunk_rows = choose_chunk_rows(rows, row_bytes, chunk_bytes)
    return -(-rows // chunk_rows) * chunk_rows * row_bytes


def csc_bytes(num_nodes: int, num_edges: int, weighted: bool, chunk_bytes: int) -> int:
    """Disk bytes of indptr, indices (and edge_weight)."""
    return (padded_bytes(num_nodes + 1, 8, chunk_bytes)
            + padded_bytes(num_edges, index_dtype(num_nodes).itemsize, chunk_bytes)
            + (padded_bytes(num_edges, 4, chunk_bytes) if weighted else 0))


def edge_scratch_bytes(num_nodes: int, num_edges: int, staged: bool, dedup: bool,
                       weighted: bool) -> int:
    """Peak scratch bytes of the edge pipeline: staging file, buckets, deduplicated indices."""
    cols = 3 if weighted else 2
    isz = index_dtype(num_nodes).itemsize
    return num_edges * ((8 * cols if staged else 0) + cols * isz
                        + ((isz + (4 if weighted else 0)) if dedup else 0))


def node_dataset_space(num_nodes: int, num_edges: int, feature_dim: int, feature_itemsize: int,
                       *, weighted: bool, staged: bool, dedup: bool, chunk_bytes: int
                       ) -> SpaceNeed:
    """Disk a node-task conversion needs: the CSC is written while the edge scratch lives;
    features, labels and splits (at most one id per node) come after it is gone."""
    csc = csc_bytes(num_nodes, num_edges, weighted, chunk_bytes)
    rest = (padded_bytes(num_nodes, feature_dim * feature_itemsize, chunk_bytes)
            + 2 * padded_bytes(num_nodes, 8, chunk_bytes))
    return SpaceNeed(output=csc + rest, scratch=edge_scratch_bytes(
        num_nodes, num_edges, staged, dedup, weighted), alongside=csc)


def base_attrs(*, task: str, num_nodes: int, num_edges: int, fmt: str, source: str,
               opts: ConvertOptions, name: str, extra: dict | None = None) -> dict:
    """Group attributes every dataset carries, with the conversion's provenance."""
    return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "name": name,
            "source": source, "task": task, "num_nodes": int(num_nodes),
            "num_edges": int(num_edges), "feature_dim": 0, "feature_dtype": "float32",
            "num_classes": 0, "splits": [],
            "convert": {"tool": "tiered-convert", "version": __version__, "format": fmt,
                        "options": opts.record(), **(extra or {})}}


def summarize(path: Path, fmt: str, attrs: dict, stats: CSCStats, sizes: dict[str, int],
              stages: Stages, opts: ConvertOptions, extra: dict | None = None
              ) -> ConvertSummary:
    """The summary of a committed dataset."""
    return ConvertSummary(
        path=str(path), format=fmt, task=attrs["task"], num_nodes=stats.num_nodes,
        num_edges=stats.num_edges, degree_min=stats.degree_min, degree_max=stats.degree_max,
        degree_mean=stats.degree_mean, feature_dim=attrs["feature_dim"],
        feature_dtype=attrs["feature_dtype"], num_classes=attrs["num_classes"],
        split_sizes=sizes, array_bytes=array_bytes(path), seconds=stages.total,
        stage_seconds=dict(stages.seconds), peak_rss_bytes=peak_rss(),
        memory_limit=opts.memory_limit, extra=extra or {})


def collector_for(od: OutputDir, opts: ConvertOptions, *, num_nodes: int | None,
                  expected_edges: int | None, weighted: bool = False, desc: str = "edges"
                  ) -> EdgeCollector:
    """An EdgeCollector in the output's scratch directory with the conversion's options."""
    return EdgeCollector(od.scratch, memory_limit=opts.memory_limit, num_nodes=num_nodes,
                         reverse=bool(opts.reverse_edges),
                         drop_self_loops=bool(opts.drop_self_loops), dedup=bool(opts.dedup),
                         compact_ids=opts.compact_ids, weighted=weighted,
                         expected_edges=expected_edges, progress=opts.progress, desc=desc)


def build_node_dataset(output: str | Path, *, fmt: str, source: str, opts: ConvertOptions,
                       feed_edges: Callable[[EdgeCollector], None], num_nodes: int | None,
                       expected_edges: int | None, weighted: bool = False,
                       features: RowSource | None = None, labels: RowSource | None = None,
                       num_classes: int | None = None, splits: SplitSpec | None = None,
                       extra_attrs: dict | None = None) -> ConvertSummary:
    """Convert one node-classification dataset: the common pipeline of the file formats.

    `feed_edges(collector)` adds every edge block; the node count is `num_nodes`
    if given, else the rows of .npy features/labels, else max id + 1 (or the
    distinct ids with compact_ids).
    """
    splits = splits or SplitSpec()
    stages = Stages()
    if num_nodes is None and not opts.compact_ids:
        for src in (features, labels):
            if src is not None and src.num_rows is not None:
                num_nodes = src.num_rows
                break
    staged = num_nodes is None or opts.compact_ids
    with OutputDir(output, overwrite=opts.overwrite, tmp_dir=opts.tmp_dir) as od:
        e_est = (expected_edges or 0) * (2 if opts.reverse_edges else 1)
        n_est = num_nodes or 0
        fdim = features.row_shape[0] if features is not None and features.row_shape else 0
        fsize = np.dtype(opts.feature_dtype or "float32").itemsize
        space = dict(weighted=weighted, dedup=bool(opts.dedup), chunk_bytes=opts.chunk_bytes)
        od.require_space(node_dataset_space(n_est, e_est, fdim, fsize, staged=staged, **space),
                         f"converting {source}")
        collector = collector_for(od, opts, num_nodes=num_nodes, expected_edges=expected_edges,
                                  weighted=weighted)
        try:
            feed_edges(collector)
            collector.finish()
            n = collector.num_nodes
            e = collector.partitioned
            od.require_space(node_dataset_space(n, e, fdim, fsize, staged=False, **space),
                             f"writing {output}")
            stats = write_csc(collector, od.root, opts.chunk_bytes)
        finally:
            collector.close()
        node_ids = collector.node_ids
        if node_ids is not None:
            write_array(od.root, "node_ids", node_ids, opts.chunk_bytes)
        stages.done("edges")
        budget = working_budget(opts.memory_limit)
        attrs = base_attrs(task="node", num_nodes=n, num_edges=stats.num_edges, fmt=fmt,
                           source=source, opts=opts, name=opts.name or Path(output).name,
                           extra=extra_attrs)
        if features is not None:
            dim, fdtype = write_features(od.root, features, n, node_ids, opts.feature_dtype,
                                         opts.chunk_bytes, budget, opts.progress)
            attrs["feature_dim"], attrs["feature_dtype"] = dim, fdtype
            stages.done("features")
        classes, sizes = write_labels_and_splits(od.root, labels, splits, n, node_ids,
                                                 num_classes, od.scratch, opts.chunk_bytes,
                                                 budget, opts.progress)
        attrs["num_classes"] = classes
        attrs["splits"] = list(sizes)
        stages.done("labels")
        path = od.commit(attrs)
        stages.done("verify")
    return summarize(path, fmt, attrs, stats, sizes, stages, opts)


def _iter_pairs(store: ScratchArray, block: int) -> Iterator[np.ndarray]:
    store.file.flush()
    with open(store.path, "rb") as f:
        while True:
            data = f.read(block * 16)
            if not data:
                return
            yield np.frombuffer(data, np.int64).reshape(-1, 2)


def finish_link_dataset(od: OutputDir, opts: ConvertOptions, stages: Stages, *, fmt: str,
                        source: str, interactions: dict[str, ScratchArray], num_users: int,
                        num_items: int, extra_attrs: dict | None = None) -> ConvertSummary:
    """Write a recommender dataset from staged (user, item) interactions and commit it.

    Nodes are users 0..U-1 then items U..U+I-1; the graph is the train
    interactions in both directions; each split's interactions are kept as a
    (K, 2) array of (user, local item id).
    """
    n = num_users + num_items
    train = interactions["train"]
    pairs = sum(padded_bytes(a.length, 16, opts.chunk_bytes) for a in interactions.values())
    csc = csc_bytes(n, 2 * train.length, False, opts.chunk_bytes)
    od.require_space(SpaceNeed(output=csc + pairs, scratch=edge_scratch_bytes(
        n, 2 * train.length, False, bool(opts.dedup), False), alongside=csc),
        f"writing {od.output}")
    collector = EdgeCollector(od.scratch, memory_limit=opts.memory_limit, num_nodes=n,
                              reverse=True, dedup=bool(opts.dedup), expected_edges=train.length,
                              progress=opts.progress, desc="interactions")
    block = max(1024, working_budget(opts.memory_limit) // 64)
    try:
        for pairs in _iter_pairs(train, block):
            collector.add(pairs[:, 0], pairs[:, 1] + num_users)
        collector.finish()
        stats = write_csc(collector, od.root, opts.chunk_bytes)
    finally:
        collector.close()
    stages.done("graph")
    sizes = {}
    for name in SPLITS:
        if name in interactions:
            sizes[name] = interactions[name].length
            interactions[name].copy_into(od.root, f"{name}_interactions", opts.chunk_bytes,
                                         block * 16)
    attrs = base_attrs(task="link", num_nodes=n, num_edges=stats.num_edges, fmt=fmt,
                       source=source, opts=opts, name=opts.name or od.output.name,
                       extra=extra_attrs)
    attrs.update(num_users=num_users, num_items=num_items, splits=list(sizes))
    stages.done("interactions")
    path = od.commit(attrs)
    stages.done("verify")
    return summarize(path, fmt, attrs, stats, {f"{k} interactions": v for k, v in sizes.items()},
                     stages, opts, extra={"users": num_users, "items": num_items})
