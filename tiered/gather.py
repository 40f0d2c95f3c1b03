"""Parallel row gather and scatter kernels (numba, nopython, nogil).

Rows are moved as raw bytes: every array is viewed as a (rows, row_bytes)
uint8 matrix, so one compiled kernel serves every dtype and row shape.
"""
from __future__ import annotations

import numba
import numpy as np

# Below this many bytes a gather runs serially: thread start-up costs more than it saves.
_PARALLEL_BYTES = 1 << 20


@numba.njit(nogil=True, cache=True)
def _gather_serial(src, ids, out):
    for i in range(ids.shape[0]):
        out[i, :] = src[ids[i], :]


@numba.njit(nogil=True, parallel=True, cache=True)
def _gather_parallel(src, ids, out):
    for i in numba.prange(ids.shape[0]):
        out[i, :] = src[ids[i], :]


@numba.njit(nogil=True, cache=True)
def _scatter_serial(dst, ids, rows):
    for i in range(ids.shape[0]):
        dst[ids[i], :] = rows[i, :]


@numba.njit(nogil=True, parallel=True, cache=True)
def _scatter_parallel(dst, ids, rows):
    for i in numba.prange(ids.shape[0]):
        dst[ids[i], :] = rows[i, :]


def as_byte_rows(a: np.ndarray) -> np.ndarray:
    """View a C-contiguous array as (rows, row_bytes) uint8 without copying."""
    if not a.flags.c_contiguous:
        raise ValueError("array must be C-contiguous")
    rows = a.shape[0] if a.ndim else 1
    return a.reshape(rows, -1).view(np.uint8) if a.size else np.empty((rows, 0), np.uint8)


def gather_rows(src: np.ndarray, ids: np.ndarray, out: np.ndarray) -> None:
    """out[i] = src[ids[i]] for int64 ids already checked to be in range."""
    s, o = as_byte_rows(src), as_byte_rows(out)
    kernel = _gather_parallel if o.nbytes >= _PARALLEL_BYTES else _gather_serial
    kernel(s, ids, o)


def scatter_rows(dst: np.ndarray, ids: np.ndarray, rows: np.ndarray) -> None:
    """dst[ids[i]] = rows[i] for unique, in-range int64 ids."""
    d, r = as_byte_rows(dst), as_byte_rows(rows)
    kernel = _scatter_parallel if r.nbytes >= _PARALLEL_BYTES else _scatter_serial
    kernel(d, ids, r)


@numba.njit(nogil=True, parallel=True, cache=True)
def copy_rows(dst, dst_idx, src, src_idx):
    """dst[dst_idx[i]] = src[src_idx[i]] on byte rows (distinct destinations): cache fills and
    write-backs move rows between a cache slab and staging buffers with this."""
    for i in numba.prange(dst_idx.shape[0]):
        dst[dst_idx[i], :] = src[src_idx[i], :]


@numba.njit(nogil=True, parallel=True, cache=True)
def assemble_rows(slab, staging, row_loc, out):
    """A batch from a plan's row_loc, on byte rows: out[j] = slab[row_loc[j]] (a cache hit) or
    staging[-row_loc[j] - 1] (load j of the batch, just read)."""
    for j in numba.prange(row_loc.shape[0]):
        s = row_loc[j]
        if s >= 0:
            out[j, :] = slab[s, :]
        else:
            out[j, :] = staging[-s - 1, :]
