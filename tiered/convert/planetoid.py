"""`planetoid`: the Planetoid citation datasets (Cora, CiteSeer, PubMed) as published by
Yang et al. (ICML 2016): `ind.<name>.{x,y,tx,ty,allx,ally,graph,test.index}` pickles.

Follows the published loaders (Kipf & Welling's GCN, PyG): features are
allx then tx with the test rows reordered by the sorted test index; when the
test index has gaps (CiteSeer's isolated nodes), the missing rows are padded
with zero features and, here, labelled -1 (the loaders give them class 0);
train = the first len(y) nodes, val = the next 500 (fewer if allx is shorter),
test = the test index.
The graph is made undirected and simple (reverse edges, no self loops, no
duplicates) as PyG does: Cora has 10,556 directed edges. These datasets are
small, so they are assembled in memory and then go through the usual writer.
"""
from __future__ import annotations

import importlib
import itertools
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np

from .build import SplitSpec, build_node_dataset
from .options import ConvertError, ConvertOptions
from .output import ConvertSummary
from .sources import ArrayRows
from .textparse import KIND_ID, iter_table

_PARTS = ("x", "y", "tx", "ty", "allx", "ally", "graph")
_NUM_VAL = 500

# The only classes a Planetoid pickle may construct (pickle runs code otherwise).
_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"), ("collections", "defaultdict"),
    ("collections", "OrderedDict"), ("copy_reg", "_reconstructor"),
    ("copyreg", "_reconstructor"), ("_codecs", "encode"),
}
_BUILTINS = {"list", "dict", "set", "tuple", "int", "float", "object"}


class _PickledSparse:
    """Stand-in for a pickled scipy.sparse matrix: unpickling fills its __dict__ with the
    matrix's arrays, which `toarray` densifies with numpy (so scipy is not needed)."""

    kind = ""

    def toarray(self) -> np.ndarray:
        state = self.__dict__
        shape = tuple(int(x) for x in state.get("_shape", state.get("shape", ())))
        data = np.asarray(state["data"])
        if self.kind in ("csr", "csc"):
            indptr = np.asarray(state["indptr"], np.int64)
            major = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
            minor = np.asarray(state["indices"], np.int64)
            rows, cols = (major, minor) if self.kind == "csr" else (minor, major)
        else:
            rows, cols = np.asarray(state["row"], np.int64), np.asarray(state["col"], np.int64)
        out = np.zeros(shape, data.dtype)
        np.add.at(out, (rows, cols), data)
        return out


_SPARSE = {f"{k}_matrix": type(f"_Pickled_{k}", (_PickledSparse,), {"kind": k})
           for k in ("csr", "csc", "coo")}


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler restricted to numpy arrays, sparse matrices and plain containers."""

    def find_class(self, module: str, name: str):
        if module.startswith("scipy.sparse") and name in _SPARSE:
            return _SPARSE[name]
        if module in ("__builtin__", "builtins") and name in _BUILTINS:
            return getattr(importlib.import_module("builtins"), name)
        if (module, name) in _ALLOWED:
            if module.startswith("numpy.core"):
                module = module.replace("numpy.core", "numpy._core")
            module = {"copy_reg": "copyreg"}.get(module, module)
            return getattr(importlib.import_module(module), name)
        raise pickle.UnpicklingError(f"class {module}.{name} is not allowed in a Planetoid file")


def _load(path: Path):
    try:
        with open(path, "rb") as f:
            return _SafeUnpickler(f, encoding="latin1").load()
    except FileNotFoundError:
        raise ConvertError(f"{path}: missing (a Planetoid dataset needs ind.<name>."
                           f"{{{','.join(_PARTS)},test.index}})") from None
    except (pickle.UnpicklingError, EOFError, ValueError, AttributeError, ImportError) as e:
        raise ConvertError(f"{path}: not a readable Planetoid pickle ({e})") from e


def _dense(m, path: Path) -> np.ndarray:
    a = m.toarray() if hasattr(m, "toarray") else np.asarray(m)
    if a.ndim != 2:
        raise ConvertError(f"{path}: expected a matrix, found shape {a.shape}")
    return a


def _onehot_labels(y: np.ndarray, path: Path) -> np.ndarray:
    """Class index per row of a one-hot matrix; -1 for all-zero rows."""
    hot = y.sum(axis=1)
    if (hot > 1).any():
        k = int(np.argmax(hot > 1))
        raise ConvertError(f"{path}: row {k} has {int(hot[k])} classes set, expected one-hot")
    return np.where(hot > 0, y.argmax(axis=1), -1).astype(np.int64)


def detect_name(directory: Path) -> str:
    """The <name> of the single ind.<name>.graph file in a directory."""
    names = sorted(p.name[4:-6] for p in directory.glob("ind.*.graph"))
    if len(names) != 1:
        raise ConvertError(f"{directory}: expected one ind.<name>.graph file, found "
                           f"{names or 'none'}; pass the name")
    return names[0]


def convert_planetoid(directory: str | Path, output: str | Path, *, name: str | None = None,
                      options: ConvertOptions | None = None) -> ConvertSummary:
    """Convert a Planetoid dataset directory (ind.<name>.* files) into a node-task dataset."""
    opts = (options or ConvertOptions()).with_defaults(reverse_edges=True, drop_self_loops=True,
                                                      dedup=True)
    directory = Path(directory)
    if not directory.is_dir():
        raise ConvertError(f"{directory}: no such directory")
    name = name or detect_name(directory)
    files = {p: directory / f"ind.{name}.{p}" for p in _PARTS}
    parts = {p: _load(f) for p, f in files.items()}
    index_file = directory / f"ind.{name}.test.index"
    if not index_file.is_file():
        raise ConvertError(f"{index_file}: missing")
    test_index = np.concatenate([tb.ints[:, 0] for tb in iter_table(index_file, [KIND_ID])]
                                + [np.empty(0, np.int64)])

    allx, tx = _dense(parts["allx"], files["allx"]), _dense(parts["tx"], files["tx"])
    ally, ty = _dense(parts["ally"], files["ally"]), _dense(parts["ty"], files["ty"])
    num_train = _dense(parts["y"], files["y"]).shape[0]
    if len(tx) != len(test_index) or len(ty) != len(test_index):
        raise ConvertError(f"{files['tx']}: {len(tx)} test rows but {index_file} lists "
                           f"{len(test_index)} ids")
    if allx.shape[1] != tx.shape[1] or len(allx) != len(ally):
        raise ConvertError(f"{files['allx']}: shape {allx.shape} does not match tx "
                           f"{tx.shape} / ally {ally.shape}")
    test_sorted = np.sort(test_index)
    if test_sorted[0] < len(allx):
        raise ConvertError(f"{index_file}: test id {test_sorted[0]} overlaps the {len(allx)} "
                           f"allx rows")
    full = int(test_sorted[-1]) - int(test_sorted[0]) + 1           # gaps become padding rows
    tx_full = np.zeros((full, tx.shape[1]), tx.dtype)
    ty_full = np.zeros((full, ty.shape[1]), ty.dtype)
    tx_full[test_sorted - test_sorted[0]] = tx
    ty_full[test_sorted - test_sorted[0]] = ty
    features = np.vstack([allx, tx_full]).astype(np.float32)
    onehot = np.vstack([ally, ty_full])
    features[test_index] = features[test_sorted]
    onehot[test_index] = onehot[test_sorted]
    labels = _onehot_labels(onehot, files["ally"])
    n = len(features)

    graph = parts["graph"]
    if not isinstance(graph, dict):
        raise ConvertError(f"{files['graph']}: expected a dict of adjacency lists, found "
                           f"{type(graph).__name__}")
    keys = np.fromiter(graph.keys(), np.int64, len(graph))
    lengths = np.fromiter(map(len, graph.values()), np.int64, len(graph))
    src = np.repeat(keys, lengths)
    dst = np.fromiter(itertools.chain.from_iterable(graph.values()), np.int64,
                      int(lengths.sum()))

    def feed(c):
        c.add(src, dst, where=lambda k: f"{files['graph']}: edge {int(src[k])} -> {int(dst[k])}")

    val_end = min(num_train + _NUM_VAL, len(allx))
    splits = SplitSpec(sources={
        "train": ArrayRows(np.arange(num_train, dtype=np.int64), f"{files['y']} (rows)"),
        "val": ArrayRows(np.arange(num_train, val_end, dtype=np.int64),
                         f"{files['ally']} (rows {num_train}..{val_end - 1})"),
        "test": ArrayRows(test_sorted, str(index_file))})
    return build_node_dataset(
        output, fmt="planetoid", source=str(directory.absolute()),
        opts=replace(opts, name=opts.name or name), feed_edges=feed, num_nodes=n,
        expected_edges=len(src), features=ArrayRows(features, str(files["allx"])),
        labels=ArrayRows(labels, str(files["ally"])), num_classes=onehot.shape[1],
        splits=splits, extra_attrs={"planetoid_name": name})
