"""Per-node inputs (features, labels, split ids) from .npy/.npz, text or memory, in row blocks.

Every source yields (block, where) pairs; `where(k)` names row k of the block
as 'file:line' for text or 'file[key]: row r' for arrays, so the checks made
by the writers can point at the offending input.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .npyio import NpyArray
from .options import ConvertError
from .textparse import KIND_FLOAT, KIND_ID, first_row_fields, iter_table

Where = Callable[[int], str]


class RowSource:
    """Rows of a per-node array. `num_rows` is None when only reading tells (text)."""

    name: str
    num_rows: int | None
    row_shape: tuple[int, ...]
    dtype: np.dtype

    def blocks(self, block_rows: int) -> Iterator[tuple[np.ndarray, Where]]:
        raise NotImplementedError

    def read_all(self) -> np.ndarray:
        """All rows in memory (split ids and other small inputs)."""
        parts = [b for b, _ in self.blocks(1 << 20)]
        if parts:
            return np.concatenate(parts)
        return np.empty((0,) + self.row_shape, self.dtype)


def _row_where(name: str, start: int) -> Where:
    return lambda k: f"{name}: row {start + k}"


class ArrayRows(RowSource):
    """An in-memory (or memory-mapped) array."""

    def __init__(self, array: np.ndarray, name: str):
        self.array = array
        self.name = name
        self.num_rows = len(array)
        self.row_shape = tuple(array.shape[1:])
        self.dtype = array.dtype

    def blocks(self, block_rows: int) -> Iterator[tuple[np.ndarray, Where]]:
        for s in range(0, len(self.array), max(1, block_rows)):
            yield np.asarray(self.array[s:s + block_rows]), _row_where(self.name, s)


class NpyRows(RowSource):
    """An array in a .npy file or an .npz member, read block by block."""

    def __init__(self, array: NpyArray):
        self.array = array
        self.name = array.name
        self.num_rows = len(array)
        self.row_shape = tuple(array.shape[1:])
        self.dtype = array.dtype

    def blocks(self, block_rows: int) -> Iterator[tuple[np.ndarray, Where]]:
        start = 0
        for block in self.array.iter_rows(block_rows):
            yield block, _row_where(self.name, start)
            start += len(block)


class TextRows(RowSource):
    """A text table: features (one row of numbers per node), labels or ids (one per line)."""

    def __init__(self, path: Path, what: str, skip_header: bool = False):
        self.path = Path(path)
        self.name = str(path)
        self.num_rows = None
        self.skip_header = skip_header
        if what == "features":
            dim = first_row_fields(self.path, skip_header)
            if dim == 0:
                raise ConvertError(f"{path}: no feature rows found")
            self.kinds = [KIND_FLOAT] * dim
            self.row_shape = (dim,)
            self.dtype = np.dtype(np.float64)
        elif what == "labels":
            self.kinds, self.row_shape, self.dtype = [KIND_FLOAT], (), np.dtype(np.float64)
        elif what == "ids":
            self.kinds, self.row_shape, self.dtype = [KIND_ID], (), np.dtype(np.int64)
        else:
            raise ValueError(f"unknown text table kind {what!r}")

    def blocks(self, block_rows: int) -> Iterator[tuple[np.ndarray, Where]]:
        width = max(8, 4 * len(self.kinds))               # rough bytes of text per row
        block_bytes = int(min(64 << 20, max(1 << 16, block_rows * width)))
        for tb in iter_table(self.path, self.kinds, self.skip_header, block_bytes):
            data = tb.floats if self.kinds[0] == KIND_FLOAT else tb.ints
            if not self.row_shape:
                data = data[:, 0]
            yield data, tb.where


def open_rows(path: str | Path, what: str, key: str | None = None,
              skip_header: bool = False) -> RowSource:
    """A row source for a file: .npy, an .npz member (`key`), or text (plain or .gz).

    `what` is "features", "labels" or "ids" (how a text file is parsed).
    """
    path = Path(path)
    if not path.exists():
        raise ConvertError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return NpyRows(NpyArray(path))
    if suffix == ".npz":
        if key is None:
            keys = NpyArray.keys(path)
            if len(keys) != 1:
                raise ConvertError(f"{path}: archive holds {keys}; name the array as "
                                   f"{path}:KEY")
            key = keys[0]
        return NpyRows(NpyArray(path, key))
    return TextRows(path, what, skip_header)


def parse_source_arg(text: str, what: str, skip_header: bool = False) -> RowSource:
    """Parse a command-line source 'FILE' or 'ARCHIVE.npz:KEY'."""
    if ".npz:" in text:
        path, key = text.rsplit(":", 1)
        return open_rows(path, what, key)
    return open_rows(text, what, skip_header=skip_header)
