"""The on-disk dataset format: a zarr v3 group of uncompressed, row-chunked arrays.

Every array is stored with the `bytes` codec only (little endian, no
compression), chunked along rows alone. A chunk file therefore holds exactly
the row-major bytes of its rows, so the engine reads row r of an array from
file ``<array>/c/<r // chunk_rows>[/0]`` at byte offset
``(r % chunk_rows) * row_bytes`` with O_DIRECT or mmap, without zarr in the
hot path, while any zarr v3 reader still opens the group. As zarr requires,
the last chunk file is full size (rows past the end are zero padding).
``chunk_rows`` is a power of two, so every chunk but a lone one is a whole
number of 4 KiB pages. See docs/format.md.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT_NAME = "tiered"
FORMAT_VERSION = 1
DEFAULT_CHUNK_BYTES = 1 << 30          # target size of one chunk file
FEATURE_DTYPES = ("float32", "float16")
TASKS = ("node", "link")
SPLITS = ("train", "val", "test")


class FormatError(ValueError):
    """A dataset directory that does not match the format (names the file and the mismatch)."""


@dataclass(frozen=True)
class ArrayLayout:
    """Where an array's rows live on disk: enough to read any row by file offset."""

    name: str
    directory: Path          # the array's directory inside the group
    shape: tuple[int, ...]
    dtype: np.dtype
    chunk_rows: int

    @property
    def num_rows(self) -> int:
        return self.shape[0]

    @property
    def row_shape(self) -> tuple[int, ...]:
        return self.shape[1:]

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize

    @property
    def num_chunks(self) -> int:
        return -(-self.num_rows // self.chunk_rows) if self.num_rows else 0

    @property
    def chunk_bytes(self) -> int:
        return self.chunk_rows * self.row_bytes

    @property
    def nbytes(self) -> int:
        return self.num_rows * self.row_bytes

    def chunk_path(self, i: int) -> Path:
        key = ["c", str(i)] + ["0"] * (len(self.shape) - 1)
        return self.directory.joinpath(*key)

    def chunk_paths(self) -> list[Path]:
        return [self.chunk_path(i) for i in range(self.num_chunks)]

    def memmap_chunks(self, mode: str = "r") -> list[np.memmap]:
        """One memmap per chunk file, each trimmed to the array's real rows."""
        return list(self.iter_chunks(mode))

    def iter_chunks(self, mode: str = "r"):
        """Memmaps of the chunk files one at a time, so a scan keeps one chunk mapped."""
        for i, p in enumerate(self.chunk_paths()):
            rows = min(self.chunk_rows, self.num_rows - i * self.chunk_rows)
            yield np.memmap(p, dtype=self.dtype, mode=mode, shape=(rows,) + self.row_shape)

    def read_all(self) -> np.ndarray:
        """The whole array in DRAM (for small arrays and tests)."""
        out = np.empty(self.shape, dtype=self.dtype)
        for i, m in enumerate(self.memmap_chunks()):
            out[i * self.chunk_rows: i * self.chunk_rows + len(m)] = m
        return out


def choose_chunk_rows(num_rows: int, row_bytes: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Largest power of two of rows that fits `chunk_bytes`, or all rows if they fit one chunk."""
    if num_rows * row_bytes <= chunk_bytes or num_rows <= 1:
        return max(1, num_rows)
    rows = max(1, chunk_bytes // max(1, row_bytes))
    return 1 << (rows.bit_length() - 1)


def _array_metadata(shape: tuple[int, ...], dtype: np.dtype, chunk_rows: int, attrs: dict) -> dict:
    dtype = np.dtype(dtype)
    fill = 0.0 if dtype.kind == "f" else (False if dtype.kind == "b" else 0)
    return {
        "zarr_format": 3,
        "node_type": "array",
        "shape": list(shape),
        "data_type": dtype.name,
        "chunk_grid": {"name": "regular",
                       "configuration": {"chunk_shape": [chunk_rows] + list(shape[1:])}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": fill,
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
        "attributes": attrs,
    }


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


def write_group_metadata(root: str | os.PathLike, attrs: dict) -> None:
    """Write (or rewrite) the group's zarr.json with the dataset attributes."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _write_json(root / "zarr.json", {"zarr_format": 3, "node_type": "group", "attributes": attrs})


class ArrayWriter:
    """Streams an array into a group row block by row block, in order.

    Memory use is one block: rows go straight to their chunk files. Call
    `close()` (or use as a context manager) to pad the last chunk and write
    the metadata; an array without metadata is not part of the group.
    """

    def __init__(self, root: str | os.PathLike, name: str, shape, dtype,
                 chunk_bytes: int = DEFAULT_CHUNK_BYTES, attrs: dict | None = None):
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        if self.dtype.byteorder == ">":
            raise FormatError(f"{name}: big-endian dtype {self.dtype} is not supported")
        row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self.layout = ArrayLayout(name, Path(root) / name, self.shape, self.dtype,
                                  choose_chunk_rows(self.shape[0], row_bytes, chunk_bytes))
        self.attrs = attrs or {}
        self.rows_written = 0
        self._file = None
        self._chunk = -1
        self.layout.directory.mkdir(parents=True, exist_ok=True)

    def write(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.shape[1:] != self.shape[1:]:
            raise FormatError(f"{self.layout.name}: block rows have shape {block.shape[1:]}, "
                              f"expected {self.shape[1:]}")
        if self.rows_written + len(block) > self.shape[0]:
            raise FormatError(f"{self.layout.name}: writing past {self.shape[0]} rows")
        pos = 0
        cr = self.layout.chunk_rows
        while pos < len(block):
            row = self.rows_written
            chunk = row // cr
            if chunk != self._chunk:
                self._open_chunk(chunk)
            take = min(len(block) - pos, (chunk + 1) * cr - row)
            self._file.write(block[pos:pos + take].tobytes())
            pos += take
            self.rows_written += take

    def _open_chunk(self, chunk: int) -> None:
        self._finish_chunk()
        path = self.layout.chunk_path(chunk)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "wb")
        self._chunk = chunk

    def _finish_chunk(self) -> None:
        if self._file is not None:
            want = self.layout.chunk_bytes
            have = self._file.tell()
            if have < want:                      # zarr stores edge chunks full size
                self._file.truncate(want)
            self._file.close()
            self._file = None

    def close(self) -> ArrayLayout:
        if self.rows_written != self.shape[0]:
            self.abort()
            raise FormatError(f"{self.layout.name}: wrote {self.rows_written} rows, "
                              f"expected {self.shape[0]}")
        self._finish_chunk()
        _write_json(self.layout.directory / "zarr.json",
                    _array_metadata(self.shape, self.dtype, self.layout.chunk_rows, self.attrs))
        return self.layout

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *rest):
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_array(root: str | os.PathLike, name: str, array: np.ndarray,
                chunk_bytes: int = DEFAULT_CHUNK_BYTES, attrs: dict | None = None) -> ArrayLayout:
    """Write an in-memory (or memmapped) array into the group in one go."""
    array = np.asarray(array)
    with ArrayWriter(root, name, array.shape, array.dtype, chunk_bytes, attrs) as w:
        step = max(1, (64 << 20) // max(1, array[:1].nbytes or 1))
        for s in range(0, len(array), step):
            w.write(array[s:s + step])
    return w.layout


def read_array_layout(root: str | os.PathLike, name: str) -> ArrayLayout:
    """Parse an array's zarr.json and check it is in the engine's raw layout."""
    directory = Path(root) / name
    meta_path = directory / "zarr.json"
    if not meta_path.is_file():
        raise FormatError(f"{meta_path}: missing (array {name!r} is not in the dataset)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise FormatError(f"{meta_path}: not valid JSON ({e})") from e
    if meta.get("zarr_format") != 3 or meta.get("node_type") != "array":
        raise FormatError(f"{meta_path}: expected a zarr v3 array")
    codecs = meta.get("codecs", [])
    if len(codecs) != 1 or codecs[0].get("name") != "bytes" or \
            codecs[0].get("configuration", {}).get("endian", "little") != "little":
        raise FormatError(f"{meta_path}: codecs must be exactly [bytes, little endian], "
                          f"found {codecs}")
    shape = tuple(int(s) for s in meta["shape"])
    chunk_shape = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
    if len(shape) == 0 or tuple(chunk_shape[1:]) != shape[1:]:
        raise FormatError(f"{meta_path}: chunks must span whole rows; shape {shape}, "
                          f"chunks {chunk_shape}")
    sep = meta.get("chunk_key_encoding", {}).get("configuration", {}).get("separator", "/")
    if meta.get("chunk_key_encoding", {}).get("name") != "default" or sep != "/":
        raise FormatError(f"{meta_path}: chunk keys must use the default encoding with '/'")
    try:
        dtype = np.dtype(meta["data_type"])
    except TypeError as e:
        raise FormatError(f"{meta_path}: unknown data_type {meta['data_type']!r}") from e
    return ArrayLayout(name, directory, shape, dtype, int(chunk_shape[0]))


def check_array_files(layout: ArrayLayout) -> None:
    """Every chunk file exists with exactly the full-chunk size."""
    for p in layout.chunk_paths():
        if not p.is_file():
            raise FormatError(f"{p}: chunk file of array {layout.name!r} is missing")
        size = p.stat().st_size
        if size != layout.chunk_bytes:
            raise FormatError(f"{p}: array {layout.name!r} chunk has {size} bytes, "
                              f"expected {layout.chunk_bytes}")
