"""Opening a dataset directory: attributes, array layouts, and the checks made on open.

`open_dataset` is cheap and strict (sizes, dtypes, indptr monotone); `verify_dataset`
reads everything and reports every problem it finds (the `tiered-convert verify` command).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .format import (FORMAT_NAME, FORMAT_VERSION, FEATURE_DTYPES, SPLITS, TASKS,
                     ArrayLayout, FormatError, check_array_files, read_array_layout)

_SCAN_ROWS = 1 << 24    # rows per block when scanning large arrays


def _indices_dtype(num_nodes: int) -> np.dtype:
    return np.dtype(np.int32) if num_nodes < 2**31 else np.dtype(np.int64)


class Dataset:
    """A checked dataset directory. Arrays are described, not loaded: tiers read them.

    Attributes mirror the group's: `num_nodes`, `num_edges`, `feature_dim`,
    `feature_dtype`, `num_classes`, `task`, `splits`; for link datasets also
    `num_users` and `num_items`.
    """

    def __init__(self, path: str | os.PathLike, attrs: dict, layouts: dict[str, ArrayLayout]):
        self.path = Path(path)
        self.attrs = attrs
        self.layouts = layouts
        self.num_nodes = int(attrs["num_nodes"])
        self.num_edges = int(attrs["num_edges"])
        self.feature_dim = int(attrs.get("feature_dim") or 0)
        self.feature_dtype = np.dtype(attrs["feature_dtype"]) if self.feature_dim else None
        self.num_classes = int(attrs.get("num_classes") or 0)
        self.task = attrs["task"]
        self.splits = list(attrs.get("splits", []))
        self.num_users = int(attrs.get("num_users") or 0)
        self.num_items = int(attrs.get("num_items") or 0)

    def __repr__(self) -> str:
        return (f"Dataset({str(self.path)!r}, nodes={self.num_nodes}, edges={self.num_edges}, "
                f"dim={self.feature_dim}, task={self.task})")

    def __contains__(self, name: str) -> bool:
        return name in self.layouts

    def layout(self, name: str) -> ArrayLayout:
        try:
            return self.layouts[name]
        except KeyError:
            raise KeyError(f"{self.path}: dataset has no array {name!r} "
                           f"(has {sorted(self.layouts)})") from None

    def load(self, name: str) -> np.ndarray:
        """Read a whole array into DRAM (for small arrays: splits, labels, indptr)."""
        return self.layout(name).read_all()

    def split(self, name: str) -> np.ndarray:
        """Node ids of split `name` ("train", "val", "test") as int64."""
        return self.load(f"{name}_idx").astype(np.int64, copy=False)


def _read_group_attrs(path: Path) -> dict:
    meta_path = path / "zarr.json"
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: dataset directory does not exist")
    if not meta_path.is_file():
        raise FormatError(f"{meta_path}: missing; {path} is not a tiered dataset (zarr v3 group)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise FormatError(f"{meta_path}: not valid JSON ({e})") from e
    if meta.get("zarr_format") != 3 or meta.get("node_type") != "group":
        raise FormatError(f"{meta_path}: expected a zarr v3 group")
    attrs = meta.get("attributes", {})
    if attrs.get("format") != FORMAT_NAME:
        raise FormatError(f"{meta_path}: attribute format is {attrs.get('format')!r}, "
                          f"expected {FORMAT_NAME!r}")
    if attrs.get("format_version") != FORMAT_VERSION:
        raise FormatError(f"{meta_path}: format_version {attrs.get('format_version')!r}, "
                          f"this tiered reads version {FORMAT_VERSION}")
    for key in ("num_nodes", "num_edges", "task"):
        if key not in attrs:
            raise FormatError(f"{meta_path}: attribute {key!r} is missing")
    if attrs["task"] not in TASKS:
        raise FormatError(f"{meta_path}: task {attrs['task']!r} not one of {TASKS}")
    return attrs


def _expect(layout: ArrayLayout, shape: tuple, dtype=None, kind: str | None = None) -> None:
    meta = layout.directory / "zarr.json"
    if layout.shape != shape:
        raise FormatError(f"{meta}: array {layout.name!r} has shape {layout.shape}, expected {shape}")
    if dtype is not None and layout.dtype != np.dtype(dtype):
        raise FormatError(f"{meta}: array {layout.name!r} has dtype {layout.dtype}, expected "
                          f"{np.dtype(dtype)}")
    if kind is not None and layout.dtype.kind not in kind:
        raise FormatError(f"{meta}: array {layout.name!r} has dtype {layout.dtype}, expected an "
                          f"integer dtype")


def _check_indptr(layout: ArrayLayout, num_edges: int) -> None:
    path = layout.directory
    prev = None
    for i, m in enumerate(layout.iter_chunks()):
        for s in range(0, len(m), _SCAN_ROWS):
            block = np.asarray(m[s:s + _SCAN_ROWS])
            if prev is None and block.size and block[0] != 0:
                raise FormatError(f"{path}: indptr[0] is {block[0]}, expected 0")
            if prev is not None and block.size and block[0] < prev:
                raise FormatError(f"{path}: indptr decreases at row {i * layout.chunk_rows + s}")
            d = np.diff(block)
            if d.size and d.min() < 0:
                at = i * layout.chunk_rows + s + int(np.argmax(d < 0)) + 1
                raise FormatError(f"{path}: indptr decreases at row {at}")
            if block.size:
                prev = block[-1]
    if prev != num_edges:
        raise FormatError(f"{path}: indptr ends at {prev}, expected num_edges = {num_edges}")


def open_dataset(path: str | os.PathLike) -> Dataset:
    """Open and check a dataset directory written by tiered-convert.

    Checks every array's metadata and chunk file sizes against the group
    attributes and that indptr is a valid CSC pointer; raises FormatError
    naming the file and the expected vs found value.
    """
    path = Path(path)
    attrs = _read_group_attrs(path)
    n, e = int(attrs["num_nodes"]), int(attrs["num_edges"])
    layouts: dict[str, ArrayLayout] = {}
    for child in sorted(path.iterdir()):
        if child.is_dir() and (child / "zarr.json").is_file():
            layouts[child.name] = read_array_layout(path, child.name)

    def need(name: str) -> ArrayLayout:
        if name not in layouts:
            raise FormatError(f"{path / name}: required array {name!r} is missing")
        return layouts[name]

    _expect(need("indptr"), (n + 1,), np.int64)
    _expect(need("indices"), (e,), _indices_dtype(n))
    dim = int(attrs.get("feature_dim") or 0)
    if dim:
        fdt = attrs.get("feature_dtype")
        if fdt not in FEATURE_DTYPES:
            raise FormatError(f"{path / 'zarr.json'}: feature_dtype {fdt!r} not one of {FEATURE_DTYPES}")
        _expect(need("features"), (n, dim), fdt)
    if attrs["task"] == "node":
        _expect(need("labels"), (n,), kind="iu")
    else:
        for key in ("num_users", "num_items"):
            if key not in attrs:
                raise FormatError(f"{path / 'zarr.json'}: link dataset lacks attribute {key!r}")
        if int(attrs["num_users"]) + int(attrs["num_items"]) != n:
            raise FormatError(f"{path / 'zarr.json'}: num_users + num_items = "
                              f"{int(attrs['num_users']) + int(attrs['num_items'])}, expected num_nodes {n}")
    for s in attrs.get("splits", []):
        if s not in SPLITS:
            raise FormatError(f"{path / 'zarr.json'}: unknown split {s!r} (known: {SPLITS})")
        if attrs["task"] == "node":
            lay = need(f"{s}_idx")
            if len(lay.shape) != 1 or lay.dtype.kind not in "iu":
                raise FormatError(f"{lay.directory}: split must be a 1-D integer array, "
                                  f"found shape {lay.shape} dtype {lay.dtype}")
        else:
            lay = need(f"{s}_interactions")
            if len(lay.shape) != 2 or lay.shape[1] != 2 or lay.dtype.kind not in "iu":
                raise FormatError(f"{lay.directory}: interactions must be (K, 2) integers, "
                                  f"found shape {lay.shape} dtype {lay.dtype}")
    for lay in layouts.values():
        check_array_files(lay)
    _check_indptr(layouts["indptr"], e)
    return Dataset(path, attrs, layouts)


def _scan(layout: ArrayLayout):
    """Yield (first_row, block) over an array without loading it whole."""
    for i, m in enumerate(layout.iter_chunks()):
        for s in range(0, len(m), _SCAN_ROWS):
            yield i * layout.chunk_rows + s, np.asarray(m[s:s + _SCAN_ROWS])


def verify_dataset(path: str | os.PathLike) -> list[str]:
    """Full check of a dataset; returns every problem found (empty list: valid)."""
    try:
        ds = open_dataset(path)
    except (FormatError, FileNotFoundError) as e:
        return [str(e)]
    problems: list[str] = []
    n = ds.num_nodes
    for start, block in _scan(ds.layout("indices")):
        bad = (block < 0) | (block >= n)
        if bad.any():
            k = int(np.argmax(bad))
            problems.append(f"{ds.layout('indices').directory}: indices[{start + k}] = {block[k]} "
                            f"out of range [0, {n}) ({int(bad.sum())} such entries in this block)")
            break
    if ds.task == "node":
        c = ds.num_classes
        labels = ds.load("labels")
        bad = (labels < -1) | (labels >= c)
        if bad.any():
            k = int(np.argmax(bad))
            problems.append(f"{ds.layout('labels').directory}: labels[{k}] = {labels[k]} out of "
                            f"range [0, {c}) (-1 marks unlabelled); {int(bad.sum())} bad labels")
        seen = np.zeros(n, dtype=np.int8)
        for s in ds.splits:
            idx = ds.load(f"{s}_idx").astype(np.int64)
            where = ds.layout(f"{s}_idx").directory
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                problems.append(f"{where}: node ids out of range [0, {n})")
                continue
            if len(np.unique(idx)) != len(idx):
                problems.append(f"{where}: split {s!r} repeats node ids")
            if seen[idx].any():
                problems.append(f"{where}: split {s!r} overlaps an earlier split "
                                f"({int(seen[idx].sum())} nodes)")
            seen[idx] = 1
            if (labels[idx] < 0).any():
                problems.append(f"{where}: split {s!r} contains unlabelled nodes")
    else:
        nu, ni = ds.num_users, ds.num_items
        for s in ds.splits:
            lay = ds.layout(f"{s}_interactions")
            for start, block in _scan(lay):
                u, it = block[:, 0], block[:, 1]
                if block.size and (u.min() < 0 or u.max() >= nu or it.min() < 0 or it.max() >= ni):
                    problems.append(f"{lay.directory}: (user, item) pairs out of range "
                                    f"[0, {nu}) x [0, {ni}) near row {start}")
                    break
    return problems
