"""The Tier seam: one small ABC every storage device implements.

A tier holds one 2-D array of fixed-size rows (a 1-D array is a table of
one-element rows). Callers hand it row ids and a buffer; the tier fills the
buffer. Everything above this seam (caches, plans, executors) speaks only in
row ids and row bytes, so DRAM, persistent memory and SSD are interchangeable.
"""
from __future__ import annotations

import abc
import threading
import time
from dataclasses import dataclass, field, fields

import numpy as np


@dataclass
class TierStats:
    """Counters a tier keeps about its own traffic (what the advisor and the
    executor's per-epoch report read)."""

    read_requests: int = 0      # calls to read_rows
    rows_read: int = 0
    bytes_read: int = 0         # bytes moved from the device (pages, not rows, on SSD)
    write_requests: int = 0
    rows_written: int = 0
    bytes_written: int = 0
    read_seconds: float = 0.0
    write_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add_read(self, rows: int, nbytes: int, seconds: float) -> None:
        with self._lock:
            self.read_requests += 1
            self.rows_read += rows
            self.bytes_read += nbytes
            self.read_seconds += seconds

    def add_write(self, rows: int, nbytes: int, seconds: float) -> None:
        with self._lock:
            self.write_requests += 1
            self.rows_written += rows
            self.bytes_written += nbytes
            self.write_seconds += seconds

    def as_dict(self) -> dict:
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}

    def reset(self) -> None:
        with self._lock:
            for k in ("read_requests", "rows_read", "bytes_read", "write_requests",
                      "rows_written", "bytes_written"):
                setattr(self, k, 0)
            self.read_seconds = self.write_seconds = 0.0


@dataclass(frozen=True)
class TierHints:
    """How a tier reads: what the placement advisor may assume before it probes.

    `page_bytes` is the device's read granularity (1 for byte-addressable
    memory); `parallel_requests` is how many reads it wants in flight.
    """

    kind: str                     # "dram", "pmem", "ssd"
    page_bytes: int = 1
    parallel_requests: int = 1
    persistent: bool = False


class Tier(abc.ABC):
    """Rows of one array on one storage device.

    Subclasses implement `_read` and `_write` for validated inputs; the public
    methods check ids and buffers once, here, and keep the statistics.
    """

    def __init__(self, name: str, num_rows: int, row_shape: tuple[int, ...], dtype: np.dtype):
        self.name = name
        self.num_rows = int(num_rows)
        self.row_shape = tuple(int(s) for s in row_shape)
        self.dtype = np.dtype(dtype)
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        self.stats = TierStats()

    # ---- the seam -------------------------------------------------------
    @property
    @abc.abstractmethod
    def hints(self) -> TierHints:
        """How this tier reads (kind, page size, wanted parallelism)."""

    @property
    def capacity_bytes(self) -> int:
        """Bytes the array occupies on this tier."""
        return self.num_rows * self.row_bytes

    @abc.abstractmethod
    def _read(self, ids: np.ndarray, out: np.ndarray) -> int:
        """Fill out[i] with row ids[i]; ids are int64 and in range. Return device bytes read."""

    @abc.abstractmethod
    def _write(self, ids: np.ndarray, rows: np.ndarray) -> int:
        """Store rows[i] as row ids[i]; ids are int64, in range, unique. Return bytes written."""

    def close(self) -> None:
        """Release files, pools and buffers. Idempotent."""

    # ---- checked entry points ----------------------------------------------
    def read_rows(self, ids, out: np.ndarray | None = None) -> np.ndarray:
        """Gather rows `ids` (any order, duplicates allowed) into `out` (allocated if None)."""
        ids = self._check_ids(ids)
        if out is None:
            out = np.empty((len(ids),) + self.row_shape, dtype=self.dtype)
        else:
            self._check_buffer(out, len(ids), "out")
        if len(ids):
            t0 = time.perf_counter()
            nbytes = self._read(ids, out)
            self.stats.add_read(len(ids), nbytes, time.perf_counter() - t0)
        return out

    def write_rows(self, ids, rows: np.ndarray) -> None:
        """Store `rows[i]` as row `ids[i]`. Ids must be unique (the last write would be ambiguous)."""
        ids = self._check_ids(ids)
        self._check_buffer(rows, len(ids), "rows")
        if len(ids) == 0:
            return
        if len(np.unique(ids)) != len(ids):
            raise ValueError(f"{self.name}: write_rows needs unique ids")
        t0 = time.perf_counter()
        nbytes = self._write(ids, rows)
        self.stats.add_write(len(ids), nbytes, time.perf_counter() - t0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.name!r}, rows={self.num_rows}, "
                f"row_shape={self.row_shape}, dtype={self.dtype})")

    # ---- validation ----------------------------------------------------
    def _check_ids(self, ids) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.ndim != 1:
            raise ValueError(f"{self.name}: ids must be 1-D, got shape {ids.shape}")
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"{self.name}: ids must be integers, got {ids.dtype}")
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if ids.size:
            lo, hi = int(ids.min()), int(ids.max())
            if lo < 0 or hi >= self.num_rows:
                bad = lo if lo < 0 else hi
                raise IndexError(f"{self.name}: row id {bad} out of range [0, {self.num_rows})")
        return ids

    def _check_buffer(self, buf: np.ndarray, n: int, what: str) -> None:
        want = (n,) + self.row_shape
        if not isinstance(buf, np.ndarray):
            raise TypeError(f"{self.name}: {what} must be a numpy array")
        if buf.shape != want or buf.dtype != self.dtype:
            raise ValueError(f"{self.name}: {what} must have shape {want} and dtype {self.dtype}, "
                             f"got {buf.shape} {buf.dtype}")
        if not buf.flags.c_contiguous:
            raise ValueError(f"{self.name}: {what} must be C-contiguous")
